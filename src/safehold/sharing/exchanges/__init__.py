"""The exchanges Safehold ships: one module per source, each a :class:`safehold.sharing.base.Exchange`."""
