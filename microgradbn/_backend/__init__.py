"""Device backends. Each module offers the same functions over its own
storage; nothing above this package knows about C, nothing below it knows
about autograd."""
