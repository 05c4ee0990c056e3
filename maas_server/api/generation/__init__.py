"""Text generation in OpenAI's shapes: completions and chat (completions.py), the Responses API
(responses.py), tool calls (tools.py), structured output (structured.py) and their models (schemas.py)."""
