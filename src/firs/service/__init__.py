"""The HTTP service: a JSON API and the web page."""
