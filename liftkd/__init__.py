"""liftkd."""
