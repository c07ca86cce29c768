"""Outbound HTTP to the services an operator configures (hash exchanges, external classification services): one
bounded JSON client whose every failure is a stable error code (:mod:`.http`), and the base of the local stand-ins
that speak those services' documented protocols for tests and rehearsals (:mod:`.standin`), the retryable error
both kinds of service raise (:mod:`.errors`) and what a configured service's name, settings and sealed credentials
must be (:mod:`.settings`).

It sits below both ``sharing`` and ``screening`` so neither has to import the other; each names its own error
class and code prefix (``exchange.*``, ``screening.*``) through :func:`safehold.outbound.http.prefixed`."""
