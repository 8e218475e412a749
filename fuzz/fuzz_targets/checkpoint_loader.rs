//! Checkpoints: any bytes are either refused with an error or loaded; loading into a model either
//! succeeds or leaves every parameter unchanged.
#![no_main]

use std::collections::HashMap;

use engine::nn::{self, Module};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(contents) = engine::io::checkpoint::from_bytes(data, "fuzz.safetensors") else {
        return;
    };
    let model = nn::Sequential::new()
        .layer(nn::Linear::new(3, 2))
        .layer(nn::BatchNorm::new_1d(2));
    let before: Vec<Vec<f32>> = nn::state_dict(&model)
        .iter()
        .map(|(_, t)| t.to_vec())
        .collect();
    let values: HashMap<String, engine::Tensor> = contents.tensors.into_iter().collect();
    if nn::load_state_dict(&model, &values, true).is_err() {
        let after: Vec<Vec<f32>> = nn::state_dict(&model)
            .iter()
            .map(|(_, t)| t.to_vec())
            .collect();
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(a, b)| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())),
            "a refused checkpoint changed the model"
        );
    } else {
        let _ = model.forward(&engine::Tensor::zeros([1, 3]));
    }
});
