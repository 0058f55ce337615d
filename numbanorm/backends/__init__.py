"""Array allocation and kernel lookup per device; see ``numbanorm.dispatch``."""
