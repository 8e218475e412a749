//! Random programs over the fallible tensor API: tensors of random small shapes, ops with random
//! axes, shapes and indices, then a backward pass. Every bad combination must come back as an
//! error; nothing may panic.
#![no_main]

use engine::ops::conv::Conv2dSpec;
use engine::ops::pool::PoolSpec;
use engine::{Shape, Tensor};
use libfuzzer_sys::fuzz_target;

/// Reads small numbers from the input, then zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn small(&mut self, n: u8) -> usize {
        (self.byte() % n) as usize
    }
    fn axis(&mut self) -> isize {
        self.small(9) as isize - 4
    }
    fn shape(&mut self) -> Vec<usize> {
        (0..self.small(5)).map(|_| self.small(5)).collect()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let mut stack: Vec<Tensor> = Vec::new();
    for _ in 0..24 {
        let shape = b.shape();
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
        if stack.len() < 2 || b.small(4) == 0 {
            if let Ok(t) = Tensor::from_vec(values, shape) {
                stack.push(if b.small(2) == 0 {
                    t.requires_grad()
                } else {
                    t
                });
            }
            continue;
        }
        let x = stack[b.small(stack.len() as u8)].clone();
        let y = stack[b.small(stack.len() as u8)].clone();
        let dims: Vec<isize> = b.shape().iter().map(|&d| d as isize - 1).collect();
        let result = match b.small(26) {
            0 => x.add(&y),
            1 => x.mul(&y),
            2 => x.div(&y),
            3 => x.matmul(&y),
            4 => x.reshape(&dims),
            5 => x.permute(&b.shape()),
            6 => x.transpose(b.axis(), b.axis()),
            7 => x.narrow(b.axis(), b.small(4), b.small(4)),
            8 => x.select(b.axis(), b.small(4)),
            9 => x.index_select(b.axis(), &b.shape()),
            10 => x.sum(&[b.axis()], b.small(2) == 0),
            11 => x.max(&[b.axis(), b.axis()], b.small(2) == 0),
            12 => x.var(&[b.axis()], false),
            13 => x.softmax(b.axis()),
            14 => x.log_softmax(b.axis()),
            15 => Tensor::concat(&[x.clone(), y.clone()], b.axis()),
            16 => Tensor::stack(&[x.clone(), y.clone()], b.axis()),
            17 => x.broadcast_to(&Shape::from(b.shape())),
            18 => x.gather(b.axis(), &y),
            19 => x.unsqueeze(b.axis()),
            20 => x.squeeze(b.axis()),
            21 => x.conv2d(
                &y,
                None,
                Conv2dSpec {
                    stride: (b.small(3), b.small(3)),
                    padding: (b.small(3), b.small(3)),
                    dilation: (b.small(3), b.small(3)),
                    groups: b.small(3),
                },
            ),
            22 => x.max_pool2d(PoolSpec::square(b.small(4))),
            23 => x.argmax(b.axis(), false),
            24 => x.where_(&y, &x),
            _ => x.flatten(b.axis(), b.axis()),
        };
        if let Ok(t) = result {
            stack.push(t);
        }
    }
    if let Some(last) = stack.last() {
        if last.requires_grad_flag() {
            let _ = last.sum_all().backward();
        }
    }
});
