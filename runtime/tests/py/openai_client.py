"""cinder serve through the official `openai` package: chat and completions, streaming and not.

Usage: openai_client.py BASE_URL API_KEY. Exits non-zero (an AssertionError or the client's
own error) on any mismatch.
"""

import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)

models = client.models.list()
model = models.data[0].id
assert model, models

messages = [
    {"role": "system", "content": "You tell short stories."},
    {"role": "user", "content": "Tell me about a cat."},
]

chat = client.chat.completions.create(
    model=model, messages=messages, max_tokens=12, temperature=0, seed=1
)
content = chat.choices[0].message.content
assert chat.object == "chat.completion", chat
assert chat.choices[0].message.role == "assistant", chat
assert content, chat
assert chat.choices[0].finish_reason in ("stop", "length"), chat
assert chat.usage.completion_tokens <= 12, chat.usage
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

stream = client.chat.completions.create(
    model=model,
    messages=messages,
    max_tokens=12,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
parts, finish, usage = [], None, None
for chunk in stream:
    assert chunk.object == "chat.completion.chunk", chunk
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
assert "".join(parts) == content, (parts, content)
assert finish == chat.choices[0].finish_reason, finish
assert usage is not None and usage.completion_tokens == chat.usage.completion_tokens, usage

done = client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=16, temperature=0
)
text = done.choices[0].text
assert done.object == "text_completion", done
assert done.choices[0].finish_reason == "length", done
assert done.usage.completion_tokens == 16, done.usage
assert text, done

streamed = "".join(
    c.choices[0].text
    for c in client.completions.create(
        model=model, prompt="Once upon a time", max_tokens=16, temperature=0, stream=True
    )
    if c.choices
)
assert streamed == text, (streamed, text)

stopped = client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=16, temperature=0, stop=[text[3:6]]
)
assert stopped.choices[0].text == text[: text.index(text[3:6])], stopped
assert stopped.choices[0].finish_reason == "stop", stopped

try:
    client.chat.completions.create(model=model, messages=[], max_tokens=4)
    raise AssertionError("empty messages were accepted")
except openai.BadRequestError as e:
    assert e.status_code == 400, e

bad = openai.OpenAI(base_url=base_url + "/v1", api_key="wrong", max_retries=0)
try:
    bad.models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401, e

print("openai client ok:", openai.__version__, repr(content), repr(text))
