"""Stage 1, the data: files and in-memory tables read into the compressed column store
(`frame/`), and what turns its columns into network inputs: the fitted preprocessing, the
categorical encodings, the response, class balance, the inputs of a model found in a new
frame, and each row's cross-validation fold.

Imports only the base modules at the package's top (errors, collectives, params, kernel, ...)."""
