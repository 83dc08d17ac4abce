"""Presentation: alerts, levels and the web console as each platform shows them."""
