//! Tensors in scripts: creation, arithmetic operators, PyTorch-named methods, indexing, autodiff.

use engine::{Shape, Tensor};
use rhai::{Array, Dynamic, Engine, FnPtr, NativeCallContext, FLOAT, INT};

use super::{err, fail, floats, ints, num, usizes, RResult};

/// A tensor from a number or (nested) arrays of numbers; the shape is read off the nesting.
pub fn from_dynamic(d: &Dynamic) -> RResult<Tensor> {
    if let Some(t) = d.clone().try_cast::<Tensor>() {
        return Ok(t);
    }
    if !d.is_array() {
        return Ok(Tensor::scalar(num(d, "tensor")? as f32));
    }
    let mut shape = Vec::new();
    let mut probe = d.clone();
    while let Some(a) = probe.clone().try_cast::<Array>() {
        shape.push(a.len());
        match a.first() {
            Some(first) => probe = first.clone(),
            None => break,
        }
    }
    let mut values = Vec::new();
    fn walk(d: &Dynamic, depth: usize, shape: &[usize], out: &mut Vec<f32>) -> RResult<()> {
        match d.clone().try_cast::<Array>() {
            Some(a) => {
                if depth >= shape.len() || a.len() != shape[depth] {
                    let expected = shape
                        .get(depth)
                        .map_or_else(|| "a number".to_string(), |n| format!("{n} entries"));
                    return fail(format!(
                        "tensor: ragged nesting: a list at depth {depth} has {} entries where {expected} were expected (every row must have the same length)",
                        a.len()
                    ));
                }
                a.iter().try_for_each(|x| walk(x, depth + 1, shape, out))
            }
            None if depth == shape.len() => {
                out.push(num(d, "tensor")? as f32);
                Ok(())
            }
            None => fail(format!(
                "tensor: ragged nesting: a number where a list of {} was expected",
                shape[depth]
            )),
        }
    }
    walk(d, 0, &shape, &mut values)?;
    Tensor::from_vec(values, shape).map_err(err)
}

/// A script array of numbers (nested like the tensor's shape).
pub fn to_array(t: &Tensor) -> Dynamic {
    fn build(data: &[f32], dims: &[usize]) -> Dynamic {
        match dims.split_first() {
            None => Dynamic::from_float(data[0] as FLOAT),
            Some((&n, rest)) => {
                let step: usize = rest.iter().product();
                Dynamic::from_array(
                    (0..n)
                        .map(|i| build(&data[i * step..(i + 1) * step], rest))
                        .collect(),
                )
            }
        }
    }
    build(&t.data(), t.dims())
}

/// A shape typed in a script, refused if a tensor of that shape would exceed the memory cap.
fn shape_of(a: &Array) -> RResult<Shape> {
    let dims = usizes(a, "shape")?;
    engine::tensor::budget::check("tensor", &dims).map_err(err)?;
    Ok(Shape::new(&dims))
}

fn index(t: &Tensor, i: INT) -> RResult<Tensor> {
    if t.rank() == 0 {
        return fail("cannot index a tensor with no axes (a scalar); use .item()");
    }
    let n = t.dims()[0] as INT;
    let j = if i < 0 { i + n } else { i };
    if j < 0 || j >= n {
        return fail(format!(
            "index {i} is out of range for axis 0 of extent {n} (shape {})",
            t.shape()
        ));
    }
    t.select(0, j as usize).map_err(err)
}

/// Registers tensors: the type, creation functions, operators and methods.
pub fn register(e: &mut Engine) {
    e.register_type_with_name::<Tensor>("Tensor");
    e.register_fn("to_string", |t: &mut Tensor| t.to_string());
    e.register_fn("to_debug", |t: &mut Tensor| t.to_string());

    // Creation.
    e.register_fn("tensor", |d: Dynamic| from_dynamic(&d));
    e.register_fn("tensor", |d: Dynamic, shape: Array| -> RResult<Tensor> {
        let flat = from_dynamic(&d)?;
        flat.reshape_to(shape_of(&shape)?).map_err(err)
    });
    e.register_fn("zeros", |s: Array| -> RResult<Tensor> {
        Ok(Tensor::zeros(shape_of(&s)?))
    });
    e.register_fn("ones", |s: Array| -> RResult<Tensor> {
        Ok(Tensor::ones(shape_of(&s)?))
    });
    e.register_fn("full", |s: Array, v: Dynamic| -> RResult<Tensor> {
        Ok(Tensor::full(shape_of(&s)?, num(&v, "full")? as f32))
    });
    e.register_fn("rand", |s: Array| -> RResult<Tensor> {
        Ok(Tensor::rand(shape_of(&s)?))
    });
    e.register_fn("randn", |s: Array| -> RResult<Tensor> {
        Ok(Tensor::randn(shape_of(&s)?))
    });
    e.register_fn(
        "randint",
        |low: INT, high: INT, s: Array| -> RResult<Tensor> {
            if high <= low {
                return fail(format!("randint: need low < high, got {low} and {high}"));
            }
            let shape = shape_of(&s)?;
            let n = shape.numel();
            let span = (high - low) as u64;
            let v = engine::tensor::rng::with_default_rng(|r| {
                (0..n)
                    .map(|_| (low + r.below(span) as INT) as f32)
                    .collect()
            });
            Tensor::from_vec(v, shape).map_err(err)
        },
    );
    e.register_fn("multinomial", |p: Tensor| -> RResult<INT> {
        let w = p.to_vec();
        if p.rank() != 1 || w.is_empty() || w.iter().any(|&x| !(x >= 0.0 && x.is_finite())) {
            return fail(format!(
                "multinomial: needs a 1-D tensor of non-negative finite weights, got {}",
                p.shape()
            ));
        }
        let total: f64 = w.iter().map(|&x| x as f64).sum();
        if total <= 0.0 {
            return fail("multinomial: the weights sum to zero");
        }
        let u = engine::tensor::rng::with_default_rng(|r| r.next_f64()) * total;
        let mut acc = 0.0;
        for (i, &x) in w.iter().enumerate() {
            acc += x as f64;
            if u < acc {
                return Ok(i as INT);
            }
        }
        Ok(w.iter().rposition(|&x| x > 0.0).unwrap_or(0) as INT)
    });
    e.register_fn("eye", |n: INT| -> RResult<Tensor> {
        let n = n.max(0) as usize;
        engine::tensor::budget::check("eye", &[n, n]).map_err(err)?;
        Ok(Tensor::eye(n))
    });
    e.register_fn("arange", |a: Dynamic, b: Dynamic| -> RResult<Tensor> {
        Tensor::arange(num(&a, "arange")? as f32, num(&b, "arange")? as f32, 1.0).map_err(err)
    });
    e.register_fn(
        "arange",
        |a: Dynamic, b: Dynamic, s: Dynamic| -> RResult<Tensor> {
            Tensor::arange(
                num(&a, "arange")? as f32,
                num(&b, "arange")? as f32,
                num(&s, "arange")? as f32,
            )
            .map_err(err)
        },
    );
    e.register_fn(
        "linspace",
        |a: Dynamic, b: Dynamic, n: INT| -> RResult<Tensor> {
            engine::tensor::budget::check("linspace", &[n.max(0) as usize]).map_err(err)?;
            Ok(Tensor::linspace(
                num(&a, "linspace")? as f32,
                num(&b, "linspace")? as f32,
                n.max(0) as usize,
            ))
        },
    );

    // Inspection.
    e.register_get("shape", |t: &mut Tensor| -> Array {
        t.dims()
            .iter()
            .map(|&d| Dynamic::from_int(d as INT))
            .collect()
    });
    e.register_fn("shape", |t: &mut Tensor| -> Array {
        t.dims()
            .iter()
            .map(|&d| Dynamic::from_int(d as INT))
            .collect()
    });
    e.register_fn("numel", |t: &mut Tensor| t.numel() as INT);
    e.register_fn("rank", |t: &mut Tensor| t.rank() as INT);
    e.register_fn("item", |t: &mut Tensor| -> RResult<FLOAT> {
        t.item().map(|v| v as FLOAT).map_err(err)
    });
    e.register_fn("to_array", |t: &mut Tensor| to_array(t));
    e.register_fn("to_list", |t: &mut Tensor| -> Array {
        t.to_vec()
            .into_iter()
            .map(|v| Dynamic::from_float(v as FLOAT))
            .collect()
    });
    e.register_fn("get", |t: &mut Tensor, idx: Array| -> RResult<FLOAT> {
        t.get(&usizes(&idx, "get")?)
            .map(|v| v as FLOAT)
            .map_err(err)
    });
    e.register_indexer_get(|t: &mut Tensor, i: INT| index(t, i));

    // Autodiff.
    e.register_fn("requires_grad", |t: &mut Tensor| t.requires_grad());
    e.register_fn("backward", |t: &mut Tensor| -> RResult<()> {
        t.backward().map_err(err)
    });
    e.register_fn("grad", |t: &mut Tensor| -> Dynamic {
        t.grad().map_or(Dynamic::UNIT, Dynamic::from)
    });
    e.register_get("grad", |t: &mut Tensor| -> Dynamic {
        t.grad().map_or(Dynamic::UNIT, Dynamic::from)
    });
    e.register_fn("zero_grad", |t: &mut Tensor| t.zero_grad());
    e.register_fn("detach", |t: &mut Tensor| t.detach());
    e.register_fn(
        "no_grad",
        |ctx: NativeCallContext, f: FnPtr| -> RResult<Dynamic> {
            let _guard = engine::set_grad_enabled(false);
            f.call_within_context(&ctx, ())
        },
    );
    // In-place update without recording: `w.update_(w - lr * w.grad)` as an optimizer does.
    // Convolution as a function of a tensor and a kernel (the layers own their kernels).
    let conv2d = |x: &Tensor, w: &Tensor, pad: INT, stride: INT| -> RResult<Tensor> {
        if pad < 0 || stride < 1 {
            return fail(format!(
                "conv2d: need padding >= 0 and stride >= 1, got {pad} and {stride}"
            ));
        }
        let spec = engine::ops::conv::Conv2dSpec {
            stride: (stride as usize, stride as usize),
            padding: (pad as usize, pad as usize),
            ..Default::default()
        };
        x.conv2d(w, None, spec).map_err(err)
    };
    e.register_fn("conv2d", move |x: Tensor, w: Tensor| conv2d(&x, &w, 0, 1));
    e.register_fn("conv2d", move |x: Tensor, w: Tensor, pad: INT| {
        conv2d(&x, &w, pad, 1)
    });
    e.register_fn(
        "conv2d",
        move |x: Tensor, w: Tensor, pad: INT, stride: INT| conv2d(&x, &w, pad, stride),
    );
    e.register_fn(
        "conv1d",
        |x: Tensor, w: Tensor, pad: INT| -> RResult<Tensor> {
            if pad < 0 {
                return fail(format!("conv1d: padding must be >= 0, got {pad}"));
            }
            x.conv1d(&w, None, 1, pad as usize, 1, 1).map_err(err)
        },
    );
    e.register_fn("update_", |t: &mut Tensor, v: Tensor| -> RResult<()> {
        t.assign(&v).map_err(err)
    });

    // Elementwise functions.
    type Unary = fn(&Tensor) -> Tensor;
    let unary: [(&str, Unary); 16] = [
        ("neg", Tensor::neg),
        ("abs", Tensor::abs),
        ("exp", Tensor::exp),
        ("log", Tensor::log),
        ("sqrt", Tensor::sqrt),
        ("sin", Tensor::sin),
        ("cos", Tensor::cos),
        ("tanh", Tensor::tanh),
        ("sigmoid", Tensor::sigmoid),
        ("relu", Tensor::relu),
        ("gelu", Tensor::gelu),
        ("softplus", Tensor::softplus),
        ("square", Tensor::square),
        ("sum", Tensor::sum_all),
        ("mean", Tensor::mean_all),
        ("flatten", |t| {
            t.reshape(&[-1])
                .expect("flattening keeps the element count")
        }),
    ];
    for (name, f) in unary {
        e.register_fn(name, move |t: &mut Tensor| f(t));
    }
    e.register_fn("leaky_relu", |t: &mut Tensor, s: FLOAT| {
        t.leaky_relu(s as f32)
    });
    e.register_fn("elu", |t: &mut Tensor, a: FLOAT| t.elu(a as f32));
    e.register_fn(
        "clamp",
        |t: &mut Tensor, lo: Dynamic, hi: Dynamic| -> RResult<Tensor> {
            let bound = |d: &Dynamic| {
                if d.is_unit() {
                    Ok(None)
                } else {
                    num(d, "clamp").map(|v| Some(v as f32))
                }
            };
            Ok(t.clamp(bound(&lo)?, bound(&hi)?))
        },
    );
    e.register_fn("pow", |t: &mut Tensor, p: Dynamic| -> RResult<Tensor> {
        match p.clone().try_cast::<Tensor>() {
            Some(pt) => t.pow(&pt).map_err(err),
            None => Ok(t.pow_scalar(num(&p, "pow")? as f32)),
        }
    });

    // Binary ops: tensor with tensor, or with a number on either side.
    type Bin = fn(&Tensor, &Tensor) -> engine::Result<Tensor>;
    let binary: [(&str, &str, Bin); 4] = [
        ("+", "add", Tensor::add),
        ("-", "sub", Tensor::sub),
        ("*", "mul", Tensor::mul),
        ("/", "div", Tensor::div),
    ];
    for (op, name, f) in binary {
        e.register_fn(op, move |a: Tensor, b: Tensor| -> RResult<Tensor> {
            f(&a, &b).map_err(err)
        });
        e.register_fn(name, move |a: &mut Tensor, b: Tensor| -> RResult<Tensor> {
            f(a, &b).map_err(err)
        });
        e.register_fn(op, move |a: Tensor, b: FLOAT| -> RResult<Tensor> {
            f(&a, &Tensor::scalar(b as f32)).map_err(err)
        });
        e.register_fn(op, move |a: FLOAT, b: Tensor| -> RResult<Tensor> {
            f(&Tensor::scalar(a as f32), &b).map_err(err)
        });
        e.register_fn(op, move |a: Tensor, b: INT| -> RResult<Tensor> {
            f(&a, &Tensor::scalar(b as f32)).map_err(err)
        });
        e.register_fn(op, move |a: INT, b: Tensor| -> RResult<Tensor> {
            f(&Tensor::scalar(a as f32), &b).map_err(err)
        });
        e.register_fn(name, move |a: &mut Tensor, b: FLOAT| -> RResult<Tensor> {
            f(a, &Tensor::scalar(b as f32)).map_err(err)
        });
    }
    e.register_fn("-", |a: Tensor| a.neg());
    e.register_fn("**", |a: Tensor, p: FLOAT| a.pow_scalar(p as f32));
    e.register_fn("**", |a: Tensor, p: INT| a.pow_scalar(p as f32));
    let others: [(&str, Bin); 9] = [
        ("matmul", Tensor::matmul),
        ("maximum", Tensor::maximum),
        ("minimum", Tensor::minimum),
        ("eq", Tensor::eq),
        ("ne", Tensor::ne),
        ("lt", Tensor::lt),
        ("le", Tensor::le),
        ("gt", Tensor::gt),
        ("ge", Tensor::ge),
    ];
    for (name, f) in others {
        e.register_fn(name, move |a: &mut Tensor, b: Tensor| -> RResult<Tensor> {
            f(a, &b).map_err(err)
        });
        e.register_fn(name, move |a: &mut Tensor, b: FLOAT| -> RResult<Tensor> {
            f(a, &Tensor::scalar(b as f32)).map_err(err)
        });
    }
    e.register_fn(
        "where_",
        |c: &mut Tensor, a: Tensor, b: Tensor| -> RResult<Tensor> { c.where_(&a, &b).map_err(err) },
    );

    // Reductions: whole tensor, one axis, or several, with or without keepdim.
    type Red = fn(&Tensor, &[isize], bool) -> engine::Result<Tensor>;
    let reductions: [(&str, Red); 6] = [
        ("sum", Tensor::sum),
        ("mean", Tensor::mean),
        ("max", Tensor::max),
        ("min", Tensor::min),
        ("variance", Tensor::var),
        ("std", Tensor::std),
    ];
    for (name, f) in reductions {
        e.register_fn(name, move |t: &mut Tensor, axis: INT| -> RResult<Tensor> {
            f(t, &[axis as isize], false).map_err(err)
        });
        e.register_fn(
            name,
            move |t: &mut Tensor, axis: INT, keep: bool| -> RResult<Tensor> {
                f(t, &[axis as isize], keep).map_err(err)
            },
        );
        e.register_fn(
            name,
            move |t: &mut Tensor, axes: Array| -> RResult<Tensor> {
                f(t, &ints(&axes, name)?, false).map_err(err)
            },
        );
        e.register_fn(
            name,
            move |t: &mut Tensor, axes: Array, keep: bool| -> RResult<Tensor> {
                f(t, &ints(&axes, name)?, keep).map_err(err)
            },
        );
    }
    for name in ["max", "min", "variance", "std"] {
        e.register_fn(name, move |t: &mut Tensor| -> RResult<Tensor> {
            match name {
                "max" => t.max_all(),
                "min" => t.min_all(),
                "variance" => t.var(&[], false),
                _ => t.std(&[], false),
            }
            .map_err(err)
        });
    }
    e.register_fn("argmax", |t: &mut Tensor, axis: INT| -> RResult<Tensor> {
        t.argmax(axis as isize, false).map_err(err)
    });
    e.register_fn("argmin", |t: &mut Tensor, axis: INT| -> RResult<Tensor> {
        t.argmin(axis as isize, false).map_err(err)
    });
    e.register_fn("argmax", |t: &mut Tensor| -> RResult<INT> {
        t.argmax_all().map(|i| i as INT).map_err(err)
    });
    e.register_fn("softmax", |t: &mut Tensor, axis: INT| -> RResult<Tensor> {
        t.softmax(axis as isize).map_err(err)
    });
    e.register_fn(
        "log_softmax",
        |t: &mut Tensor, axis: INT| -> RResult<Tensor> {
            t.log_softmax(axis as isize).map_err(err)
        },
    );

    // Shapes.
    e.register_fn(
        "reshape",
        |t: &mut Tensor, dims: Array| -> RResult<Tensor> {
            t.reshape(&ints(&dims, "reshape")?).map_err(err)
        },
    );
    e.register_fn("t", |t: &mut Tensor| -> RResult<Tensor> {
        t.t().map_err(err)
    });
    e.register_fn(
        "transpose",
        |t: &mut Tensor, a: INT, b: INT| -> RResult<Tensor> {
            t.transpose(a as isize, b as isize).map_err(err)
        },
    );
    e.register_fn("permute", |t: &mut Tensor, p: Array| -> RResult<Tensor> {
        t.permute(&usizes(&p, "permute")?).map_err(err)
    });
    e.register_fn("squeeze", |t: &mut Tensor, a: INT| -> RResult<Tensor> {
        t.squeeze(a as isize).map_err(err)
    });
    e.register_fn("unsqueeze", |t: &mut Tensor, a: INT| -> RResult<Tensor> {
        t.unsqueeze(a as isize).map_err(err)
    });
    e.register_fn(
        "narrow",
        |t: &mut Tensor, a: INT, s: INT, n: INT| -> RResult<Tensor> {
            if s < 0 || n < 0 {
                return fail("narrow: start and length must not be negative");
            }
            t.narrow(a as isize, s as usize, n as usize).map_err(err)
        },
    );
    e.register_fn(
        "slice",
        |t: &mut Tensor, a: INT, s: INT, z: INT| -> RResult<Tensor> {
            if s < 0 || z < 0 {
                return fail("slice: start and end must not be negative");
            }
            t.slice(a as isize, s as usize, z as usize).map_err(err)
        },
    );
    e.register_fn(
        "select",
        |t: &mut Tensor, a: INT, i: INT| -> RResult<Tensor> {
            if i < 0 {
                return fail("select: the index must not be negative");
            }
            t.select(a as isize, i as usize).map_err(err)
        },
    );
    e.register_fn(
        "index_select",
        |t: &mut Tensor, a: INT, idx: Array| -> RResult<Tensor> {
            t.index_select(a as isize, &usizes(&idx, "index_select")?)
                .map_err(err)
        },
    );
    e.register_fn(
        "index_select",
        |t: &mut Tensor, a: INT, idx: Tensor| -> RResult<Tensor> {
            // Like NumPy's `take`: the indexed axis is replaced by the index tensor's axes.
            let axis = t.shape().axis("index_select", a as isize).map_err(err)?;
            let i = idx
                .to_indices("index_select", t.dims()[axis])
                .map_err(err)?;
            let picked = t.index_select(axis as isize, &i).map_err(err)?;
            let mut dims: Vec<usize> = t.dims()[..axis].to_vec();
            dims.extend_from_slice(idx.dims());
            dims.extend_from_slice(&t.dims()[axis + 1..]);
            picked.reshape_to(dims).map_err(err)
        },
    );
    e.register_fn(
        "gather",
        |t: &mut Tensor, a: INT, idx: Tensor| -> RResult<Tensor> {
            t.gather(a as isize, &idx).map_err(err)
        },
    );
    e.register_fn(
        "broadcast_to",
        |t: &mut Tensor, s: Array| -> RResult<Tensor> {
            t.broadcast_to(&shape_of(&s)?).map_err(err)
        },
    );
    e.register_fn("concat", |ts: Array, axis: INT| -> RResult<Tensor> {
        Tensor::concat(&tensors(&ts, "concat")?, axis as isize).map_err(err)
    });
    e.register_fn("stack", |ts: Array, axis: INT| -> RResult<Tensor> {
        Tensor::stack(&tensors(&ts, "stack")?, axis as isize).map_err(err)
    });
    e.register_fn("matmul", |a: Tensor, b: Tensor| -> RResult<Tensor> {
        a.matmul(&b).map_err(err)
    });
    e.register_fn("floats", |a: Array| -> RResult<Tensor> {
        let v = floats(&a, "floats")?;
        let n = v.len();
        Tensor::from_vec(v.into_iter().map(|x| x as f32).collect(), [n]).map_err(err)
    });
}

/// Tensors from a script array of tensors.
pub fn tensors(a: &Array, what: &str) -> RResult<Vec<Tensor>> {
    a.iter()
        .map(|d| {
            d.clone().try_cast::<Tensor>().map_or_else(
                || {
                    fail(format!(
                        "{what}: expected a list of tensors, found a {}",
                        d.type_name()
                    ))
                },
                Ok,
            )
        })
        .collect()
}
