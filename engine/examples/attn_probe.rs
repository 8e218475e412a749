//! Times the fused self-attention op at the character GPT's shapes (batch 32, context 64, width
//! 128, 4 heads, causal), forward alone and forward + backward, for profiling: `attn_probe`.
//! Prints the best of 5 runs of 20 calls, three times.
#[global_allocator]
static ALLOC: engine::Allocator = engine::Allocator::new();

use engine::Tensor;
use std::time::Instant;

fn main() {
    engine::manual_seed(1);
    let qkv = Tensor::randn([32, 64, 384]).requires_grad();
    let g = Tensor::randn([32, 64, 128]);
    for _ in 0..3 {
        let (mut fwd, mut both) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..20 {
                let out = engine::no_grad(|| qkv.multi_head_self_attention(4, true));
                std::hint::black_box(out.expect("valid shapes"));
            }
            fwd = fwd.min(t.elapsed().as_secs_f64() / 20.0);
            let t = Instant::now();
            for _ in 0..20 {
                let (out, _) = qkv
                    .multi_head_self_attention(4, true)
                    .expect("valid shapes");
                out.backward_with(&g)
                    .expect("a gradient of the output's shape");
            }
            both = both.min(t.elapsed().as_secs_f64() / 20.0);
        }
        println!(
            "forward {:.0} us, forward + backward {:.0} us",
            fwd * 1e6,
            both * 1e6
        );
    }
}
