"""All broker I/O: topology declaration, queue status and the confirmed publisher."""
