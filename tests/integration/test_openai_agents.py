"""openai-agents (the OpenAI Agents SDK), unmodified, against the real server: a forced function tool, and a typed
final output. The SDK talks to any OpenAI-compatible server through `OpenAIChatCompletionsModel`."""

from __future__ import annotations

import asyncio

import pydantic
import pytest
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

MODEL = "smollm2-135m-instruct"
set_tracing_disabled(True)  # its traces go to OpenAI's servers by default


@pytest.fixture
def model(server_url: str) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(model=MODEL, openai_client=AsyncOpenAI(base_url=f"{server_url}/v1",
                                                                              api_key="unused", max_retries=0))


def test_a_required_function_tool_is_called_with_its_arguments(model: OpenAIChatCompletionsModel) -> None:
    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city now."""
        cities.append(city)
        return f"sunny in {city}"

    # stop_on_first_tool: the tool's answer is the agent's (a 135M model, free to choose after the tool ran, may
    # call it again and again until max_turns).
    agent = Agent(name="weather", instructions="Answer questions about the weather.", tools=[get_weather],
                  model=model, tool_use_behavior="stop_on_first_tool",
                  model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=60))
    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?", max_turns=2))
    assert len(cities) == 1 and cities[0], cities
    assert result.final_output == f"sunny in {cities[0]}"


class Capital(pydantic.BaseModel):
    country: str
    capital: str


def test_output_type_is_parsed_into_the_model(model: OpenAIChatCompletionsModel) -> None:
    agent = Agent(name="geography", instructions="Answer with the country and its capital.", model=model,
                  output_type=Capital, model_settings=ModelSettings(temperature=0, max_tokens=60))
    result = asyncio.run(Runner.run(agent, "What is the capital of France?"))
    assert isinstance(result.final_output, Capital) and result.final_output.capital, result.final_output
