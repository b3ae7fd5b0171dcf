"""Topic maps: reduce, cluster, keywords, fit / classify, identity across generations, naming, the stage.

The reducer and the clusterer are components in the style of BERTopic's sub-models: any object with
`fit_transform` / `fit_predict` can stand in for the defaults (PCA + exact kNN + UMAP, HDBSCAN).
"""
