"""What fills a store branch: the computer contract (:mod:`.base`), the handcrafted families
(:mod:`.handcrafted`), pretrained embeddings (:mod:`.neural`), the end-to-end stream's log-mel
frames (:mod:`.logmel`), the field's reference feature sets (:mod:`.sets`), one factory by branch
name (:mod:`.factory`), and the runner that computes a branch over a dataset into a store
(:mod:`.runner`)."""
