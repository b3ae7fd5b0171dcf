"""The topic explorer: a local web app (`topics explore`) over the store's maps, topics and traces."""
