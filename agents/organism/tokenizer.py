"""The organism's tokenizer: byte-level BPE trained on its own corpus, with a chat template.

Merges may cross spaces: the corpus is a few dozen scenario texts said over and over,
so whole phrases become tokens and prompts stay short, which keeps building and running
the organism fast on a CPU. A double-quoted string is a unit of its own (merges never
cross its quotes), so a quoted choice label tokenises the same in the instruction, in
the answer and in the peer view, and the decision is one token. Byte-level BPE still
encodes any text.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, EOS = "<|pad|>", "<|end|>"
ROLES = ("system", "user", "assistant")
# Each message is its role token, its content and <|end|>; the assistant's part (content
# and <|end|>) is marked for assistant-only losses. A generation prompt opens an
# assistant turn.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{%- else -%}{{ message['content'] + '<|end|>' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)


# Pieces merges never cross. PHRASES: a quoted string, brackets, a sentence end, a line
# end (merges span the rest, spaces included). WORDS: every word, space and punctuation
# mark (a label is then the same tokens in prose, format line and answer).
PHRASES = r'"[^"\n]*"|[()]|\.\s|\n'
WORDS = r"\w+|[^\w\s]|\s"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, max_token_length: int, pieces: str = PHRASES
) -> PreTrainedTokenizerFast:
    """A BPE tokenizer over `texts` (message contents) with the chat template attached."""
    special = [PAD, EOS, *(f"<|{role}|>" for role in ROLES)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pieces), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=max_token_length,
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token=PAD, eos_token=EOS, padding_side="left"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
