"""ketabayes.reporting."""
