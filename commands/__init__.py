"""The kouiki commands (the ``kouiki`` console script is ``commands.cli:app``): the top layer, above every
other package (docs/architecture.md, "Layers")."""
