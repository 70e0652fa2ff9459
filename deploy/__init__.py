"""Deployment files; render_site.py fills in the nginx site template."""
