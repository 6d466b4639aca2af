"""The package's version, written into every model, checkpoint and ensemble file."""
VERSION = "0.1.0"
