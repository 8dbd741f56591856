"""The database-backed Beat scheduler and the parts it is made of (heap, lease, dispatcher)."""
