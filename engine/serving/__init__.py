"""Serving: causal-LM paths answered by an OpenAI-compatible server (vLLM first) instead of the
app's own process, when the operator sets one (app.py --openai-url / LLM_PLAYGROUND_OPENAI_URL)."""
from . import client
from .client import (Client, Route, ServerDownError, ServingConfig, choice_tokens, complete, route, token_id,
                     use_server)

__all__ = ["client", "Client", "Route", "ServerDownError", "ServingConfig", "choice_tokens", "complete", "route",
           "token_id", "use_server"]
