"""Request bodies of every protocol turned into rows, and answers into bodies."""
