"""The operator dashboard under /dashboard/ (docs/dashboard.md): server-rendered Django pages."""
