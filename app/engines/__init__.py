"""Distributed engines `python -m app.score --engine` hands the scoring to, one module each:
`score(scorer, source, target, options) -> rows scored`, where `scorer` is an
`app.scoring.Scorer`. Each needs its extra (`spark`, `ray`)."""
