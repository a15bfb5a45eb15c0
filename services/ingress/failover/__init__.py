"""Routing a request over several upstream deployments: which one to try (``balance``), whether and when to try
again (``retry``), which deployments to leave alone for a while (``breaker``), and the loop that does it
(``router``)."""
