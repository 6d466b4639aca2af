"""Stage 5, many models: cross-validation, searches (grid, random, evolutionary, halving)
on groups of ranks, and ensembles of a search's best.  Each calls training; training never
calls them.

Imports every stage below it."""
