"""What the CLI tells a user about the service, as one line each (kept apart from `placement.client`, so
reading them does not import Ray)."""


class ServiceUnavailable(RuntimeError):
    """No Ray cluster, no service, or no answer in time."""


class ServiceError(RuntimeError):
    """The service answered with a refusal: an unknown job, an invalid spec, a store error."""
