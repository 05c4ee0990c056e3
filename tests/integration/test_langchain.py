"""LangChain's ChatOpenAI, unmodified, against the real server: tools and structured output."""

from __future__ import annotations

import pydantic
import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI


@pytest.fixture
def chat(server_url: str) -> ChatOpenAI:
    return ChatOpenAI(base_url=f"{server_url}/v1", api_key="unused", model="smollm2-135m-instruct",  # type: ignore[arg-type]
                      temperature=0, max_tokens=80, max_retries=0)


@tool
def get_weather(city: str) -> str:
    """The weather in a city now."""
    return f"sunny in {city}"


def test_bind_tools_returns_tool_calls(chat: ChatOpenAI) -> None:
    message = chat.bind_tools([get_weather], tool_choice="required").invoke("What is the weather in Paris?")
    [call] = message.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"].get("city"), str) and call["id"]


class City(pydantic.BaseModel):
    name: str
    country: str


class PlanTrip(pydantic.BaseModel):
    """Plan a trip from one city to another."""

    start: City
    end: City


def test_bind_tools_with_nested_pydantic_models(chat: ChatOpenAI) -> None:
    """The tool's schema has `$defs` and `$ref`s (pydantic writes them for nested models): a forced call follows
    them, and LangChain reads it into the model."""
    message = chat.bind_tools([PlanTrip], tool_choice="required").invoke("Plan a trip from Paris to Rome.")
    [call] = message.tool_calls
    assert call["name"] == "PlanTrip", message
    trip = PlanTrip.model_validate(call["args"])
    assert trip.start.name and trip.end.name


class Answer(pydantic.BaseModel):
    country: str
    capital: str


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_with_structured_output(chat: ChatOpenAI, method: str) -> None:
    structured = chat.with_structured_output(Answer, method=method)  # type: ignore[arg-type]
    prompt = "What is the capital of France?"
    if method == "json_mode":  # LangChain leaves the keys to the prompt in this mode
        # Greedy, this wording makes each token of {"country": "FRANCE", "capital": "Paris"} lead the next best by
        # 1.02 logits or more; ' Answer in JSON with the keys...' puts '{"' only 0.04 ahead of '{'.
        prompt += ' Reply with a JSON object with the keys "country" and "capital".'
    answer = structured.invoke(prompt)
    assert isinstance(answer, Answer) and answer.capital == "Paris"
