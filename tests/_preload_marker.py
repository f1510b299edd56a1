"""An empty module: the fork-server preload test checks whether children have it."""
