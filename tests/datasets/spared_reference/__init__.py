"""SpaRED's own library as the reference: a driver run in its own venv, and its client."""
