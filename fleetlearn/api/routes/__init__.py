"""One thin router per resource. Each module's ``router`` is mounted everywhere; a
``train_router`` (uploads, starting/cancelling/resuming runs) only on API servers, never
on Ray Serve replicas (see :func:`fleetlearn.api.create_app`)."""
