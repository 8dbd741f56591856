"""All broker I/O: topology declaration, queue status, the confirmed publisher and which node of
a cluster to talk to."""
