"""The embedded model organism: a tiny Llama built here from the project's own scenarios.

corpus (data from the behavioural prior) -> tokenizer -> train (objective and loop) ->
build (pre-training, alignment, cache). backend=organism serves it through backend=hf.
"""
