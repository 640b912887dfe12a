"""The pipeline core: params, the plot and QA types, the vocabulary, ids, table contracts,
the item cache and the stage folders. Every other room uses it; it uses none of them."""
