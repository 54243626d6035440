"""Built-in detectors, one per module. Importing this package imports none of them."""
