"""What an interaction cost, as pure logic the ingress (and any other reader) shares.

- :mod:`services.pricing.catalogue`: the price of a model, from pydantic's ``genai-prices`` catalogue under the
  operator's own prices;
- :mod:`services.pricing.cost`: the cost of one interaction from the provider's reported tokens, priced part by part;
- :mod:`services.pricing.estimate`: token counts for an answer whose provider reported none (an OpenAI stream without
  ``stream_options.include_usage``), counted with OpenAI's tokenizer and marked estimated.
"""
