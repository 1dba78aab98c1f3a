"""Inside the model: one prompt's whole journey through a real transformer, with the numbers.

    trace.py    the one recorded forward (hidden states, attentions, what each block adds),
                the Llama and BERT adapters, InsideSettings, input checks
    journey.py  text -> pieces -> ids -> embedding rows -> blocks -> logits -> picked token
    block.py    inside one block and head: Q, K, V, scores, mask, softmax, weighted sum, MLP
    lens.py     logit lens, static vs contextual "bank", the same architecture before training
    anatomy.py  config, weight groups and tensors, tokenizer files; FLOPs per token and tokens/s
    plots.py    data -> HTML and plotly figures
"""
from .anatomy import GPU_PEAKS, Anatomy, Cost, anatomy, anatomy_of, cost, flops_per_token  # noqa: F401
from .block import BlockView, block_view, table  # noqa: F401
from .journey import Journey, from_trace, journey  # noqa: F401
from .lens import (BANK, RANDOM_SEED, check_causal, Drift, Lens, Prediction, before_training, entropy, lens, logit_lens,  # noqa: F401
                   max_entropy, random_model, static_vs_contextual)
from ..core.errors import UserInputError  # noqa: F401
from .trace import (MAX_CHARS, MAX_HEADS, MAX_LAYERS, MAX_TOKENS, MODELS, InsideSettings, Trace,  # noqa: F401
                    check_layer_head, check_model, load, model_dims, models, run_trace, trace)
