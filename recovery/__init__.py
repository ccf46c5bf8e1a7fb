"""What the start of a run repairs after a crash (``recovery.start``): above the publish and anonymise steps,
below the assets and the upload service (docs/architecture.md, "Layers")."""
