r"""A bash launch script of a PyTorch training run as one optax optimizer.

Real runs start from a script such as DeepSpeedExamples'
``training/bing_bert/ds_train_bert_bsz64k_seq128.sh``::

  base_dir=`pwd`
  NCCL_TREE_THRESHOLD=0 deepspeed ${base_dir}/deepspeed_train.py \
    --cf ${base_dir}/bert_large_lamb.json --max_seq_length 128 \
    --lr_schedule "EE" --lr_offset 10e-4 \
    --deepspeed_config ${base_dir}/deepspeed_bsz64k_lamb_config_seq128.json

:func:`parse_launch_script` reads such a script without running it: the shell
variables it sets (``name=value``, ``export``, arrays ``name=( ... )``,
``${name}``, ``${name[@]}``, ``${name:-default}``,
``$(pwd)``, ```pwd```, ``$(dirname $0)``), line continuations, comments and
redirections, and finds the training command behind one of the launchers
``deepspeed``, ``torchrun``, ``python``/``python3`` and
``python -m torch.distributed.launch``/``torch.distributed.run``, with the
launcher's own options (``--num_gpus``/``--num_nodes``/``--include``,
``--nproc_per_node``/``--nnodes``) giving the data-parallel size. The script is
assumed to be run from its own folder (as DeepSpeedExamples' scripts are), so
``pwd`` is that folder and relative file arguments resolve against it.

:func:`from_launch_script` then hands the training program's arguments to the
planner registered for the program's file name in :data:`LAUNCH_PROGRAMS`
(bing_bert's ``deepspeed_train.py`` ->
:func:`bertadam_optax.interop.bing_bert.plan_bing_bert_args`; Megatron-LM's
``pretrain_*.py`` -> ``bertadam_optax.interop.megatron.plan_megatron_args``
where that module is installed) and builds the plan.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import shlex
import types
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import cast

import optax

from bertadam_optax import _validation

__all__ = [
  "LAUNCHERS",
  "LAUNCH_PROGRAMS",
  "LaunchCommand",
  "from_launch_script",
  "parse_launch_script",
  "plan_launch_script",
]

LAUNCHERS = (
  "deepspeed",
  "torchrun",
  "python",
  "torch.distributed.launch",
  "torch.distributed.run",
)
"""Launchers recognised in front of a training program."""

_BING_BERT = "bertadam_optax.interop.bing_bert:plan_bing_bert_args"
_MEGATRON = "bertadam_optax.interop.megatron:plan_megatron_args"
LAUNCH_PROGRAMS: Mapping[str, str] = types.MappingProxyType(
  {
    "deepspeed_train.py": _BING_BERT,
    "pretrain_gpt.py": _MEGATRON,
    "pretrain_bert.py": _MEGATRON,
    "pretrain_t5.py": _MEGATRON,
    "pretrain_mamba.py": _MEGATRON,
  }
)
"""Training programs (file name) -> ``"module:function"`` of their planner.

A planner is called as ``function(args, *, data_parallel_size, **options)``
with the program's arguments (file arguments already resolved) and returns a
plan with ``build()``. Planners are imported only when their program is met,
so an entry whose module is not installed fails only for that program.
"""

# Options of each launcher that take a value (the rest are flags).
_DEEPSPEED_VALUED = frozenset(
  (
    "-H",
    "--hostfile",
    "-i",
    "--include",
    "-e",
    "--exclude",
    "--num_nodes",
    "--min_elastic_nodes",
    "--max_elastic_nodes",
    "--num_gpus",
    "--num_accelerators",
    "--master_port",
    "--master_addr",
    "--node_rank",
    "--launcher",
    "--launcher_args",
    "--enable_each_rank_log",
    "--autotuning",
    "--bind_core_list",
    "--ssh_port",
    "--venv_script",
    "--comment",
  )
)
_TORCHRUN_VALUED = frozenset(
  (
    "--nnodes",
    "--nproc_per_node",
    "--nproc-per-node",
    "--rdzv_backend",
    "--rdzv-backend",
    "--rdzv_endpoint",
    "--rdzv-endpoint",
    "--rdzv_id",
    "--rdzv-id",
    "--rdzv_conf",
    "--rdzv-conf",
    "--max_restarts",
    "--max-restarts",
    "--monitor_interval",
    "--monitor-interval",
    "--start_method",
    "--start-method",
    "--role",
    "--master_addr",
    "--master-addr",
    "--master_port",
    "--master-port",
    "--node_rank",
    "--node-rank",
    "--local_addr",
    "--local-addr",
    "--log_dir",
    "--log-dir",
    "-r",
    "--redirects",
    "-t",
    "--tee",
    "--logs_specs",
    "--logs-specs",
    "--local_ranks_filter",
    "--local-ranks-filter",
    "--event_log_handler",
    "--event-log-handler",
  )
)
_PYTHON_VALUED = frozenset(("-W", "-X", "-c", "--check-hash-based-pycs"))
_SCRIPT_DIR_COMMANDS = (
  re.compile(r"^pwd$"),
  re.compile(r"^dirname\s+\S*(\$0|\$\{0\}|BASH_SOURCE)\S*$"),
  re.compile(r"^cd\s+\S*(\$0|\$\{0\}|BASH_SOURCE|dirname)[^&;]*&&\s*pwd$"),
)
_ARRAY_ASSIGNMENT = re.compile(
  r"^\s*(?:(?:export|local|declare|readonly)\s+(?:-\w+\s+)*)?"
  r"([A-Za-z_][A-Za-z0-9_]*)=\((.*)$"
)
_NO_WORD = "\x00"  # what "${empty[@]}" leaves: no word at all
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")


@dataclasses.dataclass(frozen=True)
class LaunchCommand:
  """The training command of a launch script, as the shell would run it.

  Attributes:
    script: the script's path.
    launcher: one of :data:`LAUNCHERS`.
    launcher_args: the launcher's own options, variables expanded.
    program: the training program as written (variables expanded).
    program_path: ``program`` resolved against the script's folder.
    args: the program's arguments, variables expanded, as written.
    resolved_args: ``args`` with every relative path that exists under the
      script's folder made absolute (also in ``--opt=value`` form).
    data_parallel_size: processes the launcher starts, or None when its
      options do not say (``deepspeed`` without ``--num_gpus`` uses every
      visible GPU).
    variables: the shell variables the script set before the command.
    notes: how the command was read (unset variables, guesses).
  """

  script: str
  launcher: str
  launcher_args: tuple[str, ...]
  program: str
  program_path: str
  args: tuple[str, ...]
  resolved_args: tuple[str, ...]
  data_parallel_size: int | None
  variables: Mapping[str, str]
  notes: tuple[str, ...] = ()

  @property
  def program_name(self) -> str:
    """The program's file name, the key of :data:`LAUNCH_PROGRAMS`."""
    return os.path.basename(self.program)

  def resolve_path(self, value: str) -> str:
    """``value`` as an absolute path (relative to the script's folder)."""
    return os.path.normpath(os.path.join(os.path.dirname(self.script), value))


def _logical_lines(text: str) -> list[str]:
  """The script's lines with backslash-newline continuations joined."""
  return re.sub(r"\\\r?\n", " ", text).splitlines()


def _strip_comment(line: str) -> str:
  """``line`` up to an unquoted ``#`` that starts a word."""
  quote = None
  for i, ch in enumerate(line):
    if quote:
      if ch == quote:
        quote = None
      elif ch == "\\" and quote == '"':
        continue
    elif ch in "'\"":
      quote = ch
    elif ch == "#" and (i == 0 or line[i - 1].isspace()):
      return line[:i]
  return line


class _Expander:
  """Shell parameter and command substitution over a script's variables."""

  def __init__(self, folder: str, script: str):
    self.folder = folder
    self.script = script
    self.variables: dict[str, str] = {}
    self.arrays: dict[str, list[str]] = {}
    self.notes: list[str] = []

  def _command(self, command: str) -> str:
    command = command.strip()
    if any(p.search(command) for p in _SCRIPT_DIR_COMMANDS):
      return self.folder
    self.notes.append(f"command substitution $({command}) not run; left empty.")
    return ""

  def _variable(self, name: str, default: str | None) -> str:
    if name == "0":
      return self.script
    if name in self.arrays:  # $A is the array's first element
      return (self.arrays[name] or [""])[0]
    if name in self.variables:
      return self.variables[name]
    if default is not None:
      return default
    if name.isdigit() or name in ("@", "*", "#"):
      self.notes.append(f"${name} (a script argument) expanded to nothing.")
    else:
      self.notes.append(
        f"${{{name}}} is not set in the script; expanded to "
        "nothing (the environment is not read)."
      )
    return ""

  def _array(self, name: str, quoted: bool) -> str:
    """``${name[@]}``: each element one word.

    ``$@`` is the script's arguments: none here.
    """
    if name in ("@", "*"):
      self.notes.append(
        f"${name} (the script's arguments) expanded to nothing."
      )
      items = []
    elif name in self.arrays:
      items = self.arrays[name]
    elif name in self.variables:
      items = [self.variables[name]]
    else:
      self.notes.append(
        f"${{{name}[@]}} is not set in the script; expanded to nothing."
      )
      items = []
    if not quoted:
      return " ".join(shlex.quote(item) for item in items)
    if not items:
      return _NO_WORD
    # Inside "...": close and reopen the quotes between the elements.
    escaped = [re.sub(r'(["\\$`])', r"\\\1", item) for item in items]
    return '" "'.join(escaped)

  def expand(self, line: str) -> str:
    """``line`` with the shell's parameter and command substitutions.

    ``$x``, ``${x}``, ``${x:-d}``, ``${a[@]}``, ``$(...)`` and backticks,
    except inside single quotes.
    """
    out = []
    i, quote = 0, None
    while i < len(line):
      ch = line[i]
      if quote == "'":
        out.append(ch)
        quote = None if ch == "'" else quote
        i += 1
        continue
      if ch in "'\"":
        quote = None if quote == ch else (ch if quote is None else quote)
        out.append(ch)
        i += 1
        continue
      if ch == "`":
        end = line.find("`", i + 1)
        end = len(line) if end < 0 else end
        out.append(self._command(line[i + 1 : end]))
        i = end + 1
        continue
      if ch != "$" or i + 1 >= len(line):
        out.append(ch)
        i += 1
        continue
      nxt = line[i + 1]
      if nxt == "(":
        depth, j = 1, i + 2
        while j < len(line) and depth:
          depth += {"(": 1, ")": -1}.get(line[j], 0)
          j += 1
        out.append(self._command(line[i + 2 : j - 1]))
        i = j
      elif nxt == "{":
        end = line.find("}", i + 2)
        end = len(line) if end < 0 else end
        body = line[i + 2 : end]
        array = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*|[@*])(\[[@*]\])?", body)
        if array and (array.group(2) or array.group(1) in "@*"):
          out.append(self._array(array.group(1), quote == '"'))
          i = end + 1
          continue
        name, _, default = body.partition(":-")
        name = re.sub(r"\[0\]$", "", name)
        out.append(self._variable(name, default if ":-" in body else None))
        i = end + 1
      else:
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#]", line[i + 1 :])
        if match and match.group(0) in ("@", "*"):
          out.append(self._array(match.group(0), quote == '"'))
          i += 2
        elif match:
          out.append(self._variable(match.group(0), None))
          i += 1 + match.end()
        else:
          out.append(ch)
          i += 1
    return "".join(out)


def _words(line: str) -> list[list[str]]:
  """``line`` split into simple commands, redirections dropped.

  Commands are separated by ``;``, ``&&``, ``||``, ``|`` and ``&``; each is a
  list of words.
  """
  lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
  lexer.whitespace_split = True
  lexer.commenters = ""
  tokens = list(lexer)
  commands, current, skip = [], [], False
  for token in tokens:
    if skip:
      skip = False
      continue
    if token and set(token) <= set(";&|"):
      if token in ("&>", ">&"):
        skip = True
        continue
      commands.append(current)
      current = []
      continue
    if token and set(token) <= set("<>&"):
      # A redirection: its target is the next word; `2>` leaves a `2` behind.
      if current and current[-1].isdigit():
        current.pop()
      skip = True
      continue
    current.append(token)
  commands.append(current)
  commands = [
    [w.replace(_NO_WORD, "") for w in c if w != _NO_WORD] for c in commands
  ]
  return [c for c in commands if c]


def _count_include(spec: str) -> int | None:
  """GPUs that deepspeed's ``--include host:0,1@host2:2`` names, or None."""
  total = 0
  for host in spec.split("@"):
    _, _, slots = host.partition(":")
    if not slots:
      return None
    total += len([s for s in slots.split(",") if s])
  return total


def _split_launcher(words: list[str], valued: frozenset) -> tuple[list, int]:
  """The leading options of a launcher, and the index of what follows them."""
  i = 0
  while i < len(words) and words[i].startswith("-"):
    word = words[i]
    i += 1
    if "=" not in word and word in valued:
      i += 1
  return words[:i], i


def _option(options: Sequence[str], *names: str) -> str | None:
  for i, word in enumerate(options):
    key, eq, value = word.partition("=")
    if key in names:
      if eq:
        return value
      if i + 1 < len(options):
        return options[i + 1]
  return None


def _int_option(options, *names) -> int | None:
  value = _option(options, *names)
  if value is None:
    return None
  try:
    return int(value)
  except ValueError:
    return None


def _launch(words: list[str]) -> tuple[str, list, list] | None:
  """``(launcher, launcher options, rest)`` if ``words`` launch a program."""
  head = os.path.basename(words[0])
  if head in ("deepspeed", "torchrun"):
    valued = _DEEPSPEED_VALUED if head == "deepspeed" else _TORCHRUN_VALUED
    options, i = _split_launcher(words[1:], valued)
    return head, options, words[1 + i :]
  if _PYTHON.match(head):
    i, module = 1, None
    while i < len(words) and words[i].startswith("-"):
      word = words[i]
      i += 1
      if word.startswith("-m"):
        # `-m module` ends the interpreter's options, as `python -m` does.
        module = word[2:] or (words[i] if i < len(words) else "")
        i += 0 if word[2:] else 1
        break
      if word in _PYTHON_VALUED:
        i += 1
    options, rest = words[1:i], words[i:]
    if module in ("torch.distributed.launch", "torch.distributed.run"):
      launch_options, j = _split_launcher(rest, _TORCHRUN_VALUED)
      return module, launch_options, rest[j:]
    if module is not None:
      return None
    return "python", options, rest
  return None


def _data_parallel_size(launcher: str, options: Sequence[str]) -> int | None:
  if launcher == "python":
    return 1
  if launcher == "deepspeed":
    include = _option(options, "-i", "--include")
    gpus = _int_option(options, "--num_gpus", "--num_accelerators")
    if include is not None:
      gpus = _count_include(include)
    nodes = _int_option(options, "--num_nodes")
    if gpus is None:
      return None
    return gpus * (nodes or 1)
  per_node = _int_option(options, "--nproc_per_node", "--nproc-per-node")
  nodes = _int_option(options, "--nnodes")
  if per_node is None:
    return (
      None if _option(options, "--nproc_per_node", "--nproc-per-node") else 1
    )
  return per_node * (nodes or 1)


def _resolve_word(folder: str, word: str) -> str:
  key, eq, value = word.partition("=")
  target = value if (eq and key.startswith("-")) else word
  if not target or os.path.isabs(target) or target.startswith("-"):
    return word
  path = os.path.normpath(os.path.join(folder, target))
  if not os.path.exists(path):
    return word
  return f"{key}={path}" if (eq and key.startswith("-")) else path


def _split_array(script: str, name: str, content: str) -> list[str]:
  try:
    return shlex.split(content)
  except ValueError as e:  # an unbalanced quote
    raise ValueError(f"{script}: cannot split the array {name}: {e}.") from e


def parse_launch_script(path: str | os.PathLike) -> LaunchCommand:
  r"""Reads a bash launch script and finds its training command.

  The script is read, never run: each line's continuations are joined,
  comments and redirections dropped, and the variables it assigns (including
  ``export`` and command prefixes such as ``NCCL_TREE_THRESHOLD=0``) substituted
  in order. The first command whose head is a launcher of :data:`LAUNCHERS`
  is the training command. ``pwd`` (and ``dirname $0``) is the script's folder.

  Args:
    path: the script.

  Returns:
    A :class:`LaunchCommand`.

  Raises:
    ValueError: if the file cannot be read or holds no launcher command.

  Examples:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> script = os.path.join(folder, 'run.sh')
    >>> with open(script, 'w') as f:
    ...   _ = f.write('base=`pwd`\ndeepspeed --num_gpus 8 $base/train.py \\\n'
    ...               '  --lr 1e-3  # peak\n')
    >>> command = parse_launch_script(script)
    >>> command.launcher, command.program_name, command.args
    ('deepspeed', 'train.py', ('--lr', '1e-3'))
    >>> command.data_parallel_size
    8

  References:
    DeepSpeedExamples, ``training/bing_bert/*.sh``; DeepSpeed's launcher
    (``deepspeed/launcher/runner.py``); ``torchrun``
    (``torch/distributed/run.py``).
  """
  if not isinstance(path, (str, os.PathLike)):
    raise ValueError(f"path={path!r} is not a path to a launch script.")
  script = os.path.abspath(os.fspath(path))
  try:
    with open(script, encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise ValueError(
      f"path={os.fspath(path)!r} cannot be read: {e.strerror}."
    ) from e
  folder = os.path.dirname(script)
  expander = _Expander(folder, script)
  lines = iter(_logical_lines(text))
  for line in lines:
    line = _strip_comment(line).strip()
    if not line:
      continue
    array = _ARRAY_ASSIGNMENT.match(line)
    if array:
      # NAME=( ... ) over one or more lines, up to the closing parenthesis.
      name, body = array.groups()
      parts = [body]
      while ")" not in _strip_comment(parts[-1]):
        following = next(lines, None)
        if following is None:
          break
        parts.append(_strip_comment(following))
      content = " ".join(parts)
      content = content[: content.rfind(")")] if ")" in content else content
      expander.arrays[name] = _split_array(
        script, name, expander.expand(content)
      )
      continue
    try:
      commands = _words(expander.expand(line))
    except ValueError as e:  # an unbalanced quote
      raise ValueError(f"{script}: cannot split the line {line!r}: {e}.") from e
    for words in commands:
      if words[0] in ("export", "local", "declare", "readonly"):
        words = [w for w in words[1:] if not w.startswith("-")]
        prefix_only = True
      else:
        prefix_only = False
      assigned = {}
      while words and (match := _ASSIGNMENT.match(words[0])):
        name, value = match.groups()
        assigned[name] = value
        words = words[1:]
      if not words or prefix_only:
        expander.variables.update(assigned)
        continue
      launch = _launch(words)
      if launch is None:
        continue
      launcher, options, rest = launch
      if not rest:
        raise ValueError(
          f"{script}: {launcher} starts no program in {' '.join(words)!r}."
        )
      program, args = rest[0], tuple(rest[1:])
      return LaunchCommand(
        script=script,
        launcher=launcher,
        launcher_args=tuple(options),
        program=program,
        program_path=os.path.normpath(os.path.join(folder, program)),
        args=args,
        resolved_args=tuple(_resolve_word(folder, a) for a in args),
        data_parallel_size=_data_parallel_size(launcher, options),
        variables=dict(expander.variables),
        notes=tuple(expander.notes),
      )
  raise ValueError(
    f"{script}: no training command found; expected a line starting with "
    "one of 'deepspeed', 'torchrun', 'python', 'python -m "
    "torch.distributed.launch'."
  )


def _planner(program: str) -> Callable[..., Any]:
  if program not in LAUNCH_PROGRAMS:
    raise ValueError(
      f"training program {program!r} is not one bertadam_optax can port; "
      f"known programs: {', '.join(repr(p) for p in LAUNCH_PROGRAMS)}."
    )
  module_name, _, function = LAUNCH_PROGRAMS[program].partition(":")
  try:
    module = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name != module_name:
      raise
    raise ValueError(
      f"training program {program!r} needs {module_name}, "
      "which this version of bertadam_optax does not "
      "have."
    ) from e
  return getattr(module, function)


def plan_launch_script(
  path: str | os.PathLike | LaunchCommand,
  *,
  data_parallel_size: int | None = None,
  **options: Any,
) -> Any:
  r"""The plan of the run a launch script starts (``plan.build()`` builds it).

  Args:
    path: the script, or a :class:`LaunchCommand` from
      :func:`parse_launch_script`.
    data_parallel_size: the number of data-parallel processes; by default the
      launcher's (``--num_gpus`` times ``--num_nodes``, ``--nproc_per_node``
      times ``--nnodes``), else 1 with a note in the plan.
    **options: passed to the program's planner (e.g. ``resume_step`` for
      bing_bert).

  Returns:
    The planner's plan, with a ``notes`` tuple saying how the script was read.

  Raises:
    ValueError: for an unknown training program (naming it), or whatever the
      program's planner raises for its arguments.

  Examples:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, 'run.sh'), 'w') as f:
    ...   _ = f.write('torchrun --nproc_per_node 8 pretrain_gpt.py --lr 3e-4 '
    ...               '--train-iters 1000 --micro-batch-size 4\n')
    >>> plan = plan_launch_script(os.path.join(folder, 'run.sh'))
    >>> plan.notes
    ("data_parallel_size=8 from the launcher's options '--nproc_per_node 8'.",)
  """
  command = (
    path if isinstance(path, LaunchCommand) else parse_launch_script(path)
  )
  notes = list(command.notes)
  if data_parallel_size is None:
    data_parallel_size = command.data_parallel_size
    if data_parallel_size is None:
      data_parallel_size = 1
      notes.append(
        f"{command.launcher} does not say how many processes it "
        "starts; data_parallel_size=1 assumed (pass it)."
      )
    else:
      notes.append(
        f"data_parallel_size={data_parallel_size} from the "
        f"launcher's options {' '.join(command.launcher_args)!r}."
      )
  else:
    data_parallel_size = _validation.check_int(
      "data_parallel_size", data_parallel_size, 1
    )
  planner = _planner(command.program_name)
  plan = planner(
    command.resolved_args, data_parallel_size=data_parallel_size, **options
  )
  own = tuple(getattr(plan, "notes", ()))
  if dataclasses.is_dataclass(plan) and not isinstance(plan, type):
    plan = dataclasses.replace(cast(Any, plan), notes=tuple(notes) + own)
  return plan


def from_launch_script(
  path: str | os.PathLike,
  *,
  data_parallel_size: int | None = None,
  **options: Any,
) -> optax.GradientTransformation:
  r"""The optax optimizer of the run a bash launch script starts.

  ``plan_launch_script(path, ...).build()``: the script is read (never run)
  by :func:`parse_launch_script`, and its training program's arguments are
  ported by the planner :data:`LAUNCH_PROGRAMS` names for it, e.g. bing_bert's
  ``deepspeed_train.py``:

  .. math::
    p \leftarrow p - \eta_k \, \mathrm{opt}(g, p), \qquad
    \eta_k = \eta_0 f(k) + \eta_{\text{offset}}

  with ``opt`` the ds_config's optimizer and ``f`` the ``--lr_schedule`` of
  ``update_learning_rate`` (see :func:`bertadam_optax.interop.from_bing_bert`).

  Args:
    path: the launch script.
    data_parallel_size: see :func:`plan_launch_script`.
    **options: passed to the program's planner.

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: naming the training program when no planner knows it.

  Examples:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, 'run.sh'), 'w') as f:
    ...   _ = f.write('torchrun --nproc_per_node 2 my_train.py --lr 1\n')
    >>> from_launch_script(os.path.join(folder, 'run.sh'))
    Traceback (most recent call last):
    ...
    ValueError: training program 'my_train.py' is not one bertadam_optax ...

  References:
    DeepSpeedExamples, ``training/bing_bert/ds_train_bert_bsz64k_seq128.sh``
    and ``deepspeed_train.py``.
  """
  return plan_launch_script(
    path, data_parallel_size=data_parallel_size, **options
  ).build()
