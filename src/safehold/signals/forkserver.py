"""Imported once by the fork server of :mod:`safehold.signals.isolation`: the hashers loaded and warm, so each
child forked from it hashes at once instead of loading its kernels first."""

from safehold.signals.warm import warm_hashers

warm_hashers()
