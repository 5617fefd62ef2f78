"""The model bundle contract: file layout, statistics schema, the transform, the cell rule,
load and save.

Training and serving both import this package and nothing else of each other, so the
preprocessing applied at serving time is, by construction, the one fitted in training.
It depends on numpy and pydantic only: importing it must stay cheap.
"""

from app.bundle.cells import MISSING_WORDS, NotANumber, category_key, read_number, read_numbers
from app.bundle.documents import FORMAT_VERSION
from app.bundle.errors import BundleError
from app.bundle.files import (
    LITERT_FILE,
    LITERT_QUANTIZED_FILE,
    METADATA_FILE,
    MODEL_CARD_FILE,
    REPORT_DIR,
    SAVED_MODEL_DIR,
    STATS_FILE,
    list_models,
    list_versions,
    publish_version,
    read_metadata,
    read_stats,
    resolve_version_dir,
    write_json,
)
from app.bundle.metadata import (
    ColumnSummary,
    DataSummary,
    Evaluation,
    Flatbuffer,
    Metadata,
    RowCounts,
    ServedMetadata,
    Spread,
    TrainedAs,
)
from app.bundle.preprocessing import (
    CategoricalFeature,
    ClassificationTarget,
    Decoded,
    Feature,
    Label,
    NumericFeature,
    PreprocessingStats,
    RegressionTarget,
    Target,
)

__all__ = [
    "FORMAT_VERSION",
    "LITERT_FILE",
    "LITERT_QUANTIZED_FILE",
    "METADATA_FILE",
    "MISSING_WORDS",
    "MODEL_CARD_FILE",
    "REPORT_DIR",
    "SAVED_MODEL_DIR",
    "STATS_FILE",
    "BundleError",
    "CategoricalFeature",
    "ClassificationTarget",
    "ColumnSummary",
    "DataSummary",
    "Decoded",
    "Evaluation",
    "Feature",
    "Flatbuffer",
    "Label",
    "Metadata",
    "NotANumber",
    "NumericFeature",
    "PreprocessingStats",
    "RegressionTarget",
    "RowCounts",
    "ServedMetadata",
    "Spread",
    "Target",
    "TrainedAs",
    "category_key",
    "list_models",
    "list_versions",
    "publish_version",
    "read_metadata",
    "read_number",
    "read_numbers",
    "read_stats",
    "resolve_version_dir",
    "write_json",
]
