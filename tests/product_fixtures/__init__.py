"""Generators of small sensor products in their exact file layouts, built from the shared benchmark scenes."""
