import os

from microgpt_client import Generator

# A generator that serves several models needs the model named; MICROGPT_MODEL is this
# example's own setting.
model = os.environ.get("MICROGPT_MODEL", "names")
# The address is $MICROGPT_GENERATOR (else localhost:50051) and the bearer token
# $MICROGPT_AUTH_TOKEN, as for the microgpt CLI.
with Generator() as generator:
    for token in generator.generate(prompt="", model=model, temperature=0.8, top_k=10, seed=7,
                                    num_samples=2):
        end = f"  <- {token.finish_reason} ({token.model} v{token.version})" if token.is_last else ""
        print(f"sample {token.sample_index} pos {token.position:2d} {token.text!r}{end}")
