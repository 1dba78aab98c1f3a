"""What every lesson uses; imports no topic package.

    errors.py    UserInputError (names the bad value and the valid range), the shared input checks
    device.py    cuda > mps > cpu, and the dtype policy
    registry.py  the one table of models (ModelSpec rows), online/offline decision
    cache.py     the one model cache: bounded in bytes, LRU, a lock per key
    settings.py  knob metadata (default/min/max/help) that the sliders are built from, and
                 make(), the one builder of settings from loose values
    markdown.py  text shown literally: in Markdown (md_text, md_code, md_code_block), in HTML and toasts (html_text)
    models.py    loaders for the causal LM and the encoder rows
    config.py    AppConfig: every operator setting (flags, then environment), read once; the
                 only module that reads the process environment
"""
