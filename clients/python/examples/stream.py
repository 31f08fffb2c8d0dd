from microgpt_client import Generator

with Generator() as generator:  # $MICROGPT_GENERATOR, else localhost:50051
    for token in generator.generate(prompt="", temperature=0.8, top_k=10, seed=7, num_samples=2):
        end = f"  <- {token.finish_reason} ({token.model} v{token.version})" if token.is_last else ""
        print(f"sample {token.sample_index} pos {token.position:2d} {token.text!r}{end}")
