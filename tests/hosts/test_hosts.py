"""What the model inside Claude Code, Codex CLI and Gemini CLI reads when it calls kimi_chat.

One session per host (conftest.py) makes six kimi_chat calls; each test reads one call's result as the host
handed it to its model. The parametrized tests hold for every host; the ones named after a host pin down what
that host does on top (docs/hosts.md).
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from kimi_mcp.testing.fake_kimi import Reply

pytestmark = pytest.mark.hosts

# The recipes the six-call sessions do not use, each run in a two-call session of its own.
OTHER_RECIPES = [
    "claude-code/.mcp.json",
    "claude-code/add-http.sh",
    "claude-code/.mcp.http.json",
    "codex/config.http.toml",
    "gemini-cli/settings.http.json",
]


def texts_of(request: Any) -> list[tuple[str, str]]:
    """(role, text) of each message the fake Kimi received in one request."""
    out = []
    for message in request.json()["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        out.append((message["role"], "\n".join(b["text"] for b in blocks if b.get("type") == "text")))
    return out


def test_a_reply_with_quotes_newlines_and_code_reaches_the_model_as_plain_text(host_run: Any, scenario: Any) -> None:
    result = host_run.exchange(scenario.plain)
    # The literal reply: real newlines, quotes and backslashes, not a JSON string of it.
    assert scenario.code_reply in result.text, host_run.describe()
    assert json.dumps(scenario.code_reply)[1:-1] not in result.text
    assert '"conversation_id":' not in result.text and '"usage":' not in result.text  # no structuredContent JSON
    footer = scenario.footer.search(result.text)
    assert footer and footer.group(2) == "1" and footer.group(3) is None, result.text
    assert result.text.index(scenario.code_reply) < footer.start()
    [_, prompt] = texts_of(host_run.kimi_requests[scenario.plain])[-1]
    assert prompt == result.arguments["prompt"]


def test_the_conversation_id_in_a_result_continues_the_conversation(host_run: Any, scenario: Any) -> None:
    first = host_run.exchange(scenario.plain)
    second = host_run.exchange(scenario.continued)
    first_id = scenario.footer.search(first.text).group(1)
    assert second.arguments["conversation_id"] == first_id  # what the model parsed from the text it read
    footer = scenario.footer.search(second.text)
    assert footer and (footer.group(1), footer.group(2)) == (first_id, "2"), second.text
    assert scenario.continued_reply in second.text
    # Kimi saw turn 1 in the history of the second call.
    assert texts_of(host_run.kimi_requests[scenario.continued]) == [
        ("user", first.arguments["prompt"]),
        ("assistant", scenario.code_reply),
        ("user", second.arguments["prompt"]),
    ]


def test_an_upstream_error_reaches_the_model_as_text_that_reads_as_an_error(host_run: Any, scenario: Any) -> None:
    result = host_run.exchange(scenario.error)
    # The words themselves say it (Codex does not show its model the isError flag); how each host wraps them
    # is pinned down in the host's own test below.
    assert f"Error: Kimi rejected the request (400: {scenario.error_detail})" in result.text, result.text
    assert scenario.footer.search(result.text) is None  # no conversation footer on a failed call


def test_a_reply_at_the_output_cap_reaches_the_model_whole(host_run: Any, scenario: Any) -> None:
    result = host_run.exchange(scenario.at_cap)
    assert len(scenario.at_cap_reply) == scenario.cap
    # Whole: not a preview saved to a file, not cut in the middle by the host, not cut by kimi-mcp.
    assert scenario.at_cap_reply in result.text, (len(result.text), result.text[:300], result.text[-300:])
    footer = scenario.footer.search(result.text)
    assert footer and footer.group(3) is None, result.text[-300:]


def test_a_chinese_reply_at_the_output_cap_reaches_the_model_whole(host_run: Any, scenario: Any) -> None:
    """Non-ASCII characters weigh 3 in the cut, so a reply at the cap stays under every host's limit in tokens
    (Codex) and in characters (Claude Code, Gemini CLI)."""
    result = host_run.exchange(scenario.cjk_at_cap)
    assert scenario.cjk_at_cap_reply in result.text, (len(result.text), result.text[:200], result.text[-300:])
    footer = scenario.footer.search(result.text)
    assert footer and footer.group(3) is None, result.text[-300:]


def test_a_reply_over_the_cap_arrives_cut_with_a_footer_naming_the_full_text(host_run: Any, scenario: Any) -> None:
    result = host_run.exchange(scenario.over_cap)
    footer = scenario.footer.search(result.text)
    assert footer and footer.group(3), result.text[-500:]
    shown, full = (int(group.replace(",", "")) for group in footer.group(3, 4))
    assert full == len(scenario.over_cap_reply) and shown <= scenario.cap
    assert footer.group(5) == f"kimi://conversations/{footer.group(1)}"
    # Everything kimi-mcp kept reached the model (the host cut nothing more), and the rest did not.
    assert scenario.over_cap_reply[:shown] in result.text
    assert "END-OVER-CAP" not in result.text


def tool_text(run: Any, scenario: Any) -> str:
    """The text kimi_chat returned for the first call: the reply, a blank line, the footer."""
    footer = scenario.footer.search(run.exchange(scenario.plain).text).group(0)
    return f"{scenario.code_reply}\n\n{footer}"


def test_claude_code_passes_text_blocks_and_flags_errors(host_sessions: Any, scenario: Any) -> None:
    run = host_sessions("claude-code")
    plain = run.exchange(scenario.plain).raw
    assert plain["content"] == [{"type": "text", "text": tool_text(run, scenario)}]
    assert "is_error" not in plain
    error = run.exchange(scenario.error).raw
    assert error["is_error"] is True and error["content"].startswith("Error: Kimi rejected the request (400")
    # A resource_link block becomes a text block of its own.
    over = run.exchange(scenario.over_cap)
    uri = scenario.footer.search(over.text).group(5)
    [_, link] = over.raw["content"]
    assert link["type"] == "text" and link["text"].startswith("[Resource link: conversation kc_")
    assert f"] {uri} (" in link["text"]


def test_claude_code_takes_a_raised_cap_whole(host_session: Any, scenario: Any) -> None:
    """Over Claude Code's 50,000-character default: whole only because kimi_chat declares
    `anthropic/maxResultSizeChars` from KIMI_MCP_MAX_OUTPUT_CHARS (else a file and a 2 KB preview)."""
    cap = 120_000
    reply = scenario.sized_reply("RAISED", cap)
    run = host_session(
        "claude-code",
        steps=[lambda done: {"prompt": "A long one."}],
        script=[Reply(text=reply)],
        settings={"KIMI_MCP_MAX_OUTPUT_CHARS": str(cap)},
    )
    result = run.exchange(0)
    assert reply in result.text, (len(result.text), result.text[:300])
    assert scenario.footer.search(result.text).group(3) is None


def test_codex_prefixes_wall_time_and_does_not_flag_errors(host_sessions: Any, scenario: Any) -> None:
    run = host_sessions("codex")
    shapes = set()
    for exchange in run.exchanges:
        [wall_time, *blocks] = exchange.raw["output"]
        assert re.fullmatch(r"Wall time: \d+\.\d+ seconds\nOutput:", wall_time["text"]), wall_time
        assert blocks[0]["type"] == "input_text"
        shapes.add(tuple(sorted(exchange.raw)))
    assert len(run.exchanges) == 6 and len(shapes) == 1  # a failed call looks exactly like a good one
    assert run.exchange(scenario.plain).raw["output"][1:] == [{"type": "input_text", "text": tool_text(run, scenario)}]
    error = run.exchange(scenario.error).raw["output"][1]["text"]
    assert error.startswith("Error: Kimi rejected the request (400")
    # A resource_link block reaches the model as its compact JSON.
    over = run.exchange(scenario.over_cap)
    link = json.loads(over.raw["output"][2]["text"])
    assert link["type"] == "resource_link" and link["uri"] == scenario.footer.search(over.text).group(5)


def test_gemini_cli_wraps_results_and_reports_errors_as_json(host_sessions: Any, scenario: Any) -> None:
    run = host_sessions("gemini-cli")
    wrapped = f"<untrusted_context>\n{tool_text(run, scenario)}\n</untrusted_context>"
    assert run.exchange(scenario.plain).raw["response"] == {"output": wrapped}
    # An isError result becomes `response.error`: a sentence, then the whole MCP result as JSON.
    error = run.exchange(scenario.error)
    assert set(error.raw["response"]) == {"error"} and error.flagged_error is True
    assert error.text.startswith("MCP tool 'kimi_chat' reported tool error")
    # A resource_link block becomes a line after the wrapped text.
    over = run.exchange(scenario.over_cap)
    uri = scenario.footer.search(over.text).group(5)
    assert over.text.endswith(f"</untrusted_context>\nResource Link: conversation {uri.rsplit('/', 1)[1]} at {uri}")


def test_the_hosts_ran_with_the_recipes_of_examples_hosts(host_sessions: Any, scenario: Any) -> None:
    """The configuration each host ran with is its examples/hosts file, apart from what the harness must change
    (the command's absolute path, the fake's variables) and add (a model provider, telemetry off)."""
    recipes = scenario.recipes
    codex_recipe = tomllib.loads((recipes / "codex" / "config.toml").read_text())
    codex_ran = tomllib.loads((host_sessions("codex").home / ".codex" / "config.toml").read_text())
    assert codex_ran["mcp_optional_startup_grace_ms"] == codex_recipe["mcp_optional_startup_grace_ms"]
    recipe_server, ran_server = codex_recipe["mcp_servers"]["kimi"], codex_ran["mcp_servers"]["kimi"]
    assert set(ran_server) == set(recipe_server)
    assert {k: v for k, v in ran_server.items() if k not in ("command", "env")} == {
        k: v for k, v in recipe_server.items() if k not in ("command", "env")
    }
    assert ran_server["env"]["KIMI_API_KEY"] != recipe_server["env"]["KIMI_API_KEY"] == "sk-kimi-…"
    gemini_recipe = json.loads((recipes / "gemini-cli" / "settings.json").read_text())["mcpServers"]["kimi"]
    gemini_ran = json.loads((host_sessions("gemini-cli").home / ".gemini" / "settings.json").read_text())
    ran = gemini_ran["mcpServers"]["kimi"]
    assert set(ran) == set(gemini_recipe)
    for key in set(gemini_recipe) - {"command", "env"}:
        assert ran[key] == gemini_recipe[key], key
    # The key stays a reference Gemini CLI fills in from its own environment.
    assert ran["env"]["KIMI_API_KEY"] == gemini_recipe["env"]["KIMI_API_KEY"] == "$KIMI_API_KEY"
    # Claude Code registered the server from add.sh: `claude mcp add` wrote it into its own configuration.
    claude = json.loads((host_sessions("claude-code").home / ".claude.json").read_text())
    registered = [
        project["mcpServers"]["kimi"]
        for project in claude.get("projects", {}).values()
        if "kimi" in project.get("mcpServers", {})
    ]
    assert [(server["args"], server["env"]["KIMI_API_KEY"]) for server in registered] == [
        (["serve"], "sk-kimi-test-key")
    ]


# -- every other recipe of these hosts: Claude Code's project file and HTTP ones, the HTTP recipes of all three --


def test_every_recipe_of_a_host_that_runs_here_is_run(scenario: Any) -> None:
    """A new file in examples/hosts/{claude-code,codex,gemini-cli} fails here until HOST_RECIPES runs it."""
    folders = {recipe.split("/")[0] for recipe in scenario.host_recipes}
    on_disk = {
        str(path.relative_to(scenario.recipes))
        for folder in folders
        for path in (scenario.recipes / folder).iterdir()
        if path.is_file()
    }
    assert on_disk == set(scenario.host_recipes)
    assert sorted([*scenario.default_recipes, *OTHER_RECIPES]) == sorted(scenario.host_recipes)


@pytest.fixture(params=OTHER_RECIPES)
def recipe_run(request: pytest.FixtureRequest, recipe_sessions: Any) -> Any:
    return recipe_sessions(request.param)


def test_each_other_recipe_reaches_kimi_and_continues_the_conversation(recipe_run: Any, scenario: Any) -> None:
    """The host connected as the recipe says — over HTTP with its URL and bearer header (the server answers 401 to
    anything else: tests/test_examples.py) — called kimi_chat, and continued the conversation by its id."""
    first = recipe_run.exchange(scenario.plain)
    assert scenario.code_reply in first.text, recipe_run.describe()
    first_id = scenario.footer.search(first.text).group(1)
    second = recipe_run.exchange(scenario.continued)
    assert second.arguments["conversation_id"] == first_id
    footer = scenario.footer.search(second.text)
    assert footer and (footer.group(1), footer.group(2)) == (first_id, "2"), second.text
    assert scenario.continued_reply in second.text
    assert len(recipe_run.kimi_requests) == 2
