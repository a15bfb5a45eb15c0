"""Detection logic that more than one service needs, as pure functions: no I/O, no service's internals.

- :mod:`services.detection.secrets`: the one catalogue of secret kinds (patterns, validation) and the scan that finds
  them; the ingress masks what it finds, the guard reports it;
- :mod:`services.detection.credentials`: scrubbing provider credentials out of URLs, paths and error texts before they
  are recorded or logged;
- :mod:`services.detection.literals` and :mod:`services.detection.leads`: the fast literal scans the detectors gate
  their regexes on.
"""
