//! `help(name)`: every bound function with its signature, what it does, and a one-line example.

use rhai::Engine;

use super::{Output, SharedHost};

/// One documented function (all its overloads).
pub struct Entry {
    pub name: &'static str,
    pub signature: &'static str,
    pub doc: &'static str,
    pub example: &'static str,
}

macro_rules! entries {
    ($(($name:literal, $sig:literal, $doc:literal, $ex:literal)),* $(,)?) => {
        /// The documentation of every function bound into scripts.
        pub static HELP: &[Entry] = &[$(Entry { name: $name, signature: $sig, doc: $doc, example: $ex }),*];
    };
}

entries![
    // Tensors: creation
    ("tensor", "tensor(values) / tensor(values, shape)", "A tensor from a number or nested lists of numbers (shape read off the nesting), optionally reshaped.", "let x = tensor([[1, 2], [3, 4]]);"),
    ("zeros", "zeros(shape)", "A tensor of zeros.", "let z = zeros([2, 3]);"),
    ("ones", "ones(shape)", "A tensor of ones.", "let o = ones([3]);"),
    ("full", "full(shape, value)", "A tensor filled with one value.", "let f = full([2, 2], 0.5);"),
    ("rand", "rand(shape)", "Uniform draws in [0, 1) from the seeded generator.", "let u = rand([4]);"),
    ("randn", "randn(shape)", "Standard normal draws from the seeded generator.", "let w = randn([3, 2]);"),
    ("randint", "randint(low, high, shape)", "Whole numbers drawn uniformly from low..high-1 (as floats), from the seeded generator.", "let idx = randint(0, 10, [4]);"),
    ("multinomial", "multinomial(weights)", "Draws one index with probability proportional to its weight (a 1-D tensor), from the seeded generator.", "let next = multinomial(probs);"),
    ("eye", "eye(n)", "The n×n identity matrix.", "let i = eye(3);"),
    ("arange", "arange(start, end) / arange(start, end, step)", "Evenly stepped values from start up to (not including) end.", "let r = arange(0, 5);"),
    ("linspace", "linspace(start, end, n)", "n evenly spaced values from start to end inclusive.", "let xs = linspace(-1, 1, 5);"),
    ("floats", "floats(list)", "A 1-D tensor from a list of numbers.", "let v = floats([0.5, 1.5]);"),
    ("manual_seed", "manual_seed(seed)", "Reseeds the generator behind rand, randn and layer initialisation.", "manual_seed(42);"),
    // Tensors: inspection
    ("shape", "x.shape / x.shape()", "The extent of each axis, as a list.", "print(x.shape);"),
    ("numel", "x.numel()", "The number of elements.", "x.numel()"),
    ("rank", "x.rank()", "The number of axes.", "x.rank()"),
    ("item", "x.item()", "The value of a one-element tensor, as a number.", "let v = loss.item();"),
    ("to_array", "x.to_array()", "The values as nested lists.", "x.to_array()"),
    ("to_list", "x.to_list()", "The values as one flat list.", "x.to_list()"),
    ("get", "x.get([i, j, ...])", "The value at a full index.", "x.get([0, 1])"),
    // Autodiff
    ("requires_grad", "x.requires_grad()", "The same numbers as a leaf that gradients flow to.", "let w = randn([2]).requires_grad();"),
    ("backward", "loss.backward()", "Computes the gradient of a one-element tensor with respect to every leaf that requires grad, and frees the graph.", "loss.backward();"),
    ("grad", "w.grad / w.grad()", "The gradient accumulated into a leaf (unit () if none yet).", "print(w.grad);"),
    ("zero_grad", "w.zero_grad() / model.zero_grad() / opt.zero_grad()", "Forgets accumulated gradients.", "opt.zero_grad();"),
    ("detach", "x.detach()", "The same numbers, cut from the graph.", "let y = x.detach();"),
    ("no_grad", "no_grad(|| ...)", "Runs a closure without recording a graph.", "let y = no_grad(|| model.forward(x));"),
    ("update_", "w.update_(new_values)", "Overwrites a tensor's values in place without recording (a hand-written optimizer step).", "w.update_(w - 0.1 * w.grad);"),
    // Elementwise
    ("neg", "x.neg()", "-x (also the unary minus).", "x.neg()"),
    ("abs", "x.abs()", "|x|.", "x.abs()"),
    ("exp", "x.exp()", "e^x.", "x.exp()"),
    ("log", "x.log()", "The natural logarithm.", "x.log()"),
    ("sqrt", "x.sqrt()", "The square root.", "x.sqrt()"),
    ("sin", "x.sin()", "sin x.", "x.sin()"),
    ("cos", "x.cos()", "cos x.", "x.cos()"),
    ("tanh", "x.tanh() / tanh()", "Hyperbolic tangent; tanh() with no argument is the layer.", "x.tanh()"),
    ("sigmoid", "x.sigmoid() / sigmoid()", "1 / (1 + e^-x); sigmoid() is the layer.", "x.sigmoid()"),
    ("relu", "x.relu() / relu()", "max(x, 0); relu() is the layer.", "x.relu()"),
    ("gelu", "x.gelu() / gelu()", "Gaussian error linear unit; gelu() is the layer.", "x.gelu()"),
    ("softplus", "x.softplus() / softplus()", "log(1 + e^x); softplus() is the layer.", "x.softplus()"),
    ("leaky_relu", "x.leaky_relu(slope) / leaky_relu()", "x for x > 0, slope·x otherwise; leaky_relu() is the layer (slope 0.01).", "x.leaky_relu(0.1)"),
    ("elu", "x.elu(alpha) / elu()", "x for x > 0, alpha(e^x - 1) otherwise; elu() is the layer.", "x.elu(1.0)"),
    ("square", "x.square()", "x².", "x.square()"),
    ("clamp", "x.clamp(min, max)", "Limits values to [min, max]; pass () for no bound.", "x.clamp(0.0, ())"),
    ("pow", "x.pow(p) / x ** p", "x to the power p (a number or a tensor).", "x.pow(2)"),
    ("add", "x.add(y) / x + y", "Sum, with broadcasting.", "x + 1"),
    ("sub", "x.sub(y) / x - y", "Difference, with broadcasting.", "x - y"),
    ("mul", "x.mul(y) / x * y", "Elementwise product, with broadcasting.", "x * y"),
    ("div", "x.div(y) / x / y", "Elementwise quotient, with broadcasting.", "x / 2"),
    ("maximum", "x.maximum(y)", "Elementwise larger value.", "x.maximum(0.0)"),
    ("minimum", "x.minimum(y)", "Elementwise smaller value.", "x.minimum(y)"),
    ("eq", "x.eq(y)", "1 where equal, else 0.", "pred.eq(labels).mean()"),
    ("ne", "x.ne(y)", "1 where different, else 0.", "x.ne(0.0)"),
    ("lt", "x.lt(y)", "1 where x < y, else 0.", "x.lt(0.0)"),
    ("le", "x.le(y)", "1 where x <= y, else 0.", "x.le(1.0)"),
    ("gt", "x.gt(y)", "1 where x > y, else 0.", "x.gt(0.5)"),
    ("ge", "x.ge(y)", "1 where x >= y, else 0.", "x.ge(0.0)"),
    ("where_", "cond.where_(a, b)", "a where cond is non-zero, b elsewhere.", "x.gt(0.0).where_(x, zeros(x.shape))"),
    ("matmul", "a.matmul(b) / matmul(a, b)", "Matrix product (batched, with broadcasting; 1-D operands as vectors).", "x.matmul(w)"),
    // Reductions
    ("sum", "x.sum() / x.sum(axis) / x.sum(axes, keepdim)", "Sum of all elements, or over axes.", "x.sum(1)"),
    ("mean", "x.mean() / x.mean(axis) / x.mean(axes, keepdim)", "Mean of all elements, or over axes.", "x.mean(0)"),
    ("max", "x.max() / x.max(axis) / x.max(axes, keepdim)", "Largest element, or over axes.", "x.max(1)"),
    ("min", "x.min() / x.min(axis) / x.min(axes, keepdim)", "Smallest element, or over axes.", "x.min()"),
    ("variance", "x.variance() / x.variance(axis) / x.variance(axes, keepdim)", "Variance (divides by n - 1, as PyTorch's var; `var` is a reserved word in Rhai).", "x.variance(0)"),
    ("std", "x.std() / x.std(axis) / x.std(axes, keepdim)", "Standard deviation (n - 1).", "x.std()"),
    ("argmax", "x.argmax() / x.argmax(axis)", "Index of the largest element (of the flattened tensor, or along an axis).", "logits.argmax(1)"),
    ("argmin", "x.argmin(axis)", "Index of the smallest element along an axis.", "d.argmin(1)"),
    ("softmax", "x.softmax(axis) / softmax()", "exp(x) normalised to sum to 1 along an axis (computed stably); softmax() is the layer.", "logits.softmax(1)"),
    ("log_softmax", "x.log_softmax(axis)", "log of softmax, computed without forming it.", "logits.log_softmax(1)"),
    // Shapes
    ("reshape", "x.reshape(shape)", "Same values, another shape (one entry may be -1).", "x.reshape([2, -1])"),
    ("flatten", "x.flatten() / flatten()", "All values in one axis; flatten() is the layer that flattens all but the batch axis.", "x.flatten()"),
    ("t", "x.t()", "Transpose of a matrix.", "w.t()"),
    ("transpose", "x.transpose(a, b)", "Swaps two axes.", "x.transpose(0, 1)"),
    ("permute", "x.permute(order)", "Reorders the axes.", "x.permute([2, 0, 1])"),
    ("squeeze", "x.squeeze(axis)", "Removes an axis of extent 1.", "x.squeeze(0)"),
    ("unsqueeze", "x.unsqueeze(axis)", "Inserts an axis of extent 1.", "x.unsqueeze(0)"),
    ("narrow", "x.narrow(axis, start, length)", "A run of entries along an axis.", "x.narrow(0, 1, 2)"),
    ("slice", "x.slice(axis, start, end)", "Entries start..end along an axis.", "x.slice(1, 0, 3)"),
    ("select", "x.select(axis, index)", "One entry along an axis, with that axis removed (x[i] for axis 0).", "x.select(1, 0)"),
    ("index_select", "x.index_select(axis, indices)", "The listed entries along an axis; with a tensor of indices, that axis is replaced by the index tensor's axes (NumPy's take).", "x.index_select(0, [2, 0])"),
    ("gather", "x.gather(axis, index_tensor)", "Picks one entry per position along an axis.", "logp.gather(1, labels.unsqueeze(1))"),
    ("broadcast_to", "x.broadcast_to(shape)", "Repeats along broadcast axes.", "b.broadcast_to([4, 3])"),
    ("concat", "concat([a, b, ...], axis)", "Joins tensors along an axis.", "concat([x, y], 0)"),
    ("stack", "stack([a, b, ...], axis)", "Stacks same-shaped tensors along a new axis.", "stack([x, y], 0)"),
    // Layers and models
    ("linear", "linear(in, out)", "A fully connected layer y = x·Wᵀ + b.", "let l = linear(2, 8);"),
    ("conv2d", "conv2d(in, out, k) / conv2d(in, out, k, padding) / conv2d(in, out, k, padding, stride) / conv2d(x, kernel[, padding[, stride]])", "A 2-D convolution layer over [N, C, H, W]; or, given tensors, x convolved with a kernel [out, in, k, k].", "conv2d(1, 8, 3, 1)"),
    ("conv1d", "conv1d(in, out, k, padding) / conv1d(x, kernel, padding)", "A 1-D convolution layer over [N, C, L]; or, given tensors, x convolved with a kernel [out, in, k].", "conv1d(1, 4, 5, 2)"),
    ("maxpool2d", "maxpool2d(k)", "k×k max pooling.", "maxpool2d(2)"),
    ("avgpool2d", "avgpool2d(k)", "k×k average pooling.", "avgpool2d(2)"),
    ("maxpool1d", "maxpool1d(k)", "Max pooling over windows of k along a sequence.", "maxpool1d(2)"),
    ("global_avg_pool", "global_avg_pool()", "Mean over all positions: [N, C, H, W] to [N, C].", "global_avg_pool()"),
    ("dropout", "dropout(p)", "Zeroes each value with probability p while training.", "dropout(0.2)"),
    ("batchnorm1d", "batchnorm1d(features)", "Batch normalisation of [N, C] or [N, C, L].", "batchnorm1d(64)"),
    ("batchnorm2d", "batchnorm2d(channels)", "Batch normalisation of [N, C, H, W].", "batchnorm2d(16)"),
    ("layernorm", "layernorm(width)", "Layer normalisation over the last axis.", "layernorm(128)"),
    ("embedding", "embedding(count, width)", "A table of learned vectors indexed by whole numbers.", "embedding(1000, 16)"),
    ("attention", "attention(width, heads, causal)", "Multi-head self-attention over [B, T, width].", "attention(32, 4, true)"),
    ("transformer_block", "transformer_block(width, heads, causal)", "Pre-norm transformer block: attention and an MLP, each with a residual connection.", "transformer_block(64, 4, true)"),
    ("residual", "residual(layer)", "layer(x) + x: a skip connection.", "residual(sequential([linear(8, 8), relu()]))"),
    ("basic_block", "basic_block(in, out, stride)", "The ResNet basic block (two 3×3 convolutions with batch norm, plus the input).", "basic_block(16, 16, 1)"),
    ("inception", "inception(in, c1, c3, c5, pool)", "Inception block: parallel 1×1, 3×3, 5×5 and pooling branches joined on channels.", "inception(8, 4, 4, 2, 2)"),
    ("parallel", "parallel([branch, ...])", "Runs branches on one input and joins their outputs on axis 1.", "parallel([conv2d(3, 4, 1), conv2d(3, 4, 3, 1)])"),
    ("sequential", "sequential([layer, ...])", "Layers applied in order.", "let m = sequential([linear(2, 8), tanh(), linear(8, 1)]);"),
    ("identity", "identity()", "A layer that passes its input through.", "identity()"),
    ("activation", "activation(name)", "An activation layer by name: relu, tanh, sigmoid, gelu, linear, ...", "activation(\"tanh\")"),
    ("forward", "model.forward(x)", "Runs a layer or model.", "let y = model.forward(x);"),
    ("parameters", "model.parameters()", "The trainable tensors, as a list.", "model.parameters()"),
    ("named_parameters", "model.named_parameters()", "The trainable tensors by PyTorch-style name.", "model.named_parameters()"),
    ("num_params", "model.num_params()", "How many trainable numbers.", "model.num_params()"),
    ("train", "model.train()", "Training mode: dropout on, batch norm uses batch statistics.", "model.train();"),
    ("eval", "model.eval()", "Evaluation mode.", "model.eval();"),
    ("summary", "model.summary(example_input)", "A table of every layer's output shape, parameters, time and memory.", "model.summary(zeros([1, 784]));"),
    ("attention_maps", "model.attention_maps()", "The attention weights [B, heads, T, T] of each attention layer from the last forward pass.", "let maps = model.attention_maps();"),
    // Optimizers
    ("sgd", "sgd(model_or_tensors, lr) / sgd(..., lr, momentum)", "Stochastic gradient descent, optionally with momentum.", "let opt = sgd(model, 0.1, 0.9);"),
    ("nesterov", "nesterov(model_or_tensors, lr, momentum)", "SGD with Nesterov momentum.", "nesterov(model, 0.05, 0.9)"),
    ("adam", "adam(model_or_tensors, lr) / adam(model_or_tensors, lr, beta1, beta2)", "Adam (betas 0.9, 0.999 unless given; GANs often use 0.5, 0.999).", "let opt = adam(model, 0.001);"),
    ("adamw", "adamw(model_or_tensors, lr, weight_decay)", "Adam with decoupled weight decay.", "adamw(model, 0.001, 0.01)"),
    ("rmsprop", "rmsprop(model_or_tensors, lr)", "RMSProp (alpha 0.99).", "rmsprop(model, 0.01)"),
    ("adagrad", "adagrad(model_or_tensors, lr)", "Adagrad.", "adagrad(model, 0.1)"),
    ("step", "opt.step()", "Updates the parameters from their gradients.", "opt.step();"),
    ("lr", "opt.lr()", "The learning rate.", "opt.lr()"),
    ("set_lr", "opt.set_lr(lr)", "Changes the learning rate.", "opt.set_lr(0.01);"),
    // Losses
    ("mse_loss", "mse_loss(pred, target)", "Mean squared error.", "mse_loss(y_hat, y)"),
    ("l1_loss", "l1_loss(pred, target)", "Mean absolute error.", "l1_loss(y_hat, y)"),
    ("huber_loss", "huber_loss(pred, target, delta)", "Quadratic near 0, linear beyond delta.", "huber_loss(y_hat, y, 1.0)"),
    ("bce_loss", "bce_loss(probabilities, targets)", "Binary cross-entropy on probabilities (after a sigmoid).", "bce_loss(p, y)"),
    ("bce_with_logits", "bce_with_logits(scores, targets)", "Binary cross-entropy on raw scores, computed stably.", "bce_with_logits(z, y)"),
    ("cross_entropy", "cross_entropy(logits, class_indices)", "Softmax cross-entropy for multi-class classification.", "cross_entropy(logits, labels)"),
    ("cross_entropy_probs", "cross_entropy_probs(logits, target_probabilities)", "Cross-entropy against one-hot or soft targets.", "cross_entropy_probs(logits, one_hot(labels, 10))"),
    ("nll_loss", "nll_loss(log_probabilities, class_indices)", "Negative log-likelihood.", "nll_loss(logits.log_softmax(1), labels)"),
    ("kl_div", "kl_div(log_q, p)", "KL divergence of p from q, averaged over the batch.", "kl_div(q.log(), p)"),
    ("gaussian_kl", "gaussian_kl(mu, logvar)", "The VAE's KL term against N(0, 1).", "gaussian_kl(mu, logvar)"),
    // Data
    ("dataset", "dataset(x, y)", "Pairs features and targets (samples on axis 0).", "let d = dataset(x, y);"),
    ("len", "data.len()", "The number of samples.", "train.len()"),
    ("split", "data.split(fractions, seed)", "Shuffles and splits, e.g. [0.8, 0.2].", "let parts = data.split([0.8, 0.2], 0);"),
    ("subset", "data.subset(start, end)", "Samples start..end.", "train.subset(0, 100)"),
    ("batches", "data.batches(size, seed)", "The data set shuffled with the seed and cut into batches (a list of data sets).", "for b in train.batches(64, epoch) { ... }"),
    ("standardize", "standardize(train, [others...])", "Scales features to mean 0, std 1 using the training split's statistics; returns [train, others...].", "let s = standardize(train, [test]);"),
    ("one_hot", "one_hot(labels, classes)", "One-hot rows from class indices.", "one_hot(y, 10)"),
    ("load_csv", "load_csv(path) / load_csv(path, target_column)", "A numeric CSV with a header row; the target column defaults to `label`.", "let iris = load_csv(\"data/iris.csv\");"),
    ("load_idx", "load_idx(images_path, labels_path)", "MNIST-format (IDX) images and labels.", "load_idx(\"data/x.idx\", \"data/y.idx\")"),
    ("digits", "digits()", "The 8×8 handwritten digits shipped with the lessons (1,797 images, values 0..16).", "let d = digits();"),
    // Training
    ("fit", "fit(model, opt, loss, train, #{...}) / fit(model, opt, loss, train, val, #{...})", "Trains for epochs (options: epochs, batch_size, seed, metrics, patience, l1, l2, clip, shards, plot, title); draws the loss as it goes and returns the history.", "let h = fit(model, opt, \"cross_entropy\", train, val, #{epochs: 20});"),
    ("evaluate", "evaluate(model, data, loss, metrics)", "Loss and metrics in evaluation mode.", "evaluate(model, test, \"cross_entropy\", [\"accuracy\"])"),
    ("predict", "predict(model, x)", "Outputs in evaluation mode, without a graph.", "let out = predict(model, test.x);"),
    ("accuracy", "accuracy(outputs, labels)", "Fraction classified correctly (argmax, or a 0.5 threshold for one column).", "accuracy(out, test.y)"),
    ("pytorch_mlp_forward", "pytorch_mlp_forward(checkpoint, x)", "Loads a checkpoint of sequential([linear, relu, ..., linear]) into torch.nn.Sequential with the notebook's own Python script and runs x through it: #{available, output, torch, model}, or #{available: false, message} without python3 and PyTorch.", "let r = pytorch_mlp_forward(\"mlp.safetensors\", x);"),
    ("save_checkpoint", "save_checkpoint(model, path) / save_checkpoint(model, opt, path)", "Saves weights (and optimizer state) as safetensors, atomically, under the current directory.", "save_checkpoint(model, \"model.safetensors\");"),
    ("load_checkpoint", "load_checkpoint(model, path) / load_checkpoint(model, opt, path)", "Loads a safetensors checkpoint after checking every name and shape.", "load_checkpoint(model, \"model.safetensors\");"),
    // Pictures
    ("plot", "plot(values_or_map) / plot(..., #{title, log_y, x_label, y_label})", "A line chart of one series or a map of series (a training history).", "plot(h, #{title: \"learning curves\"});"),
    ("scatter", "scatter(points, classes) / scatter(..., #{title, labels, names})", "Points [n, 2] coloured by class; `names` writes a word beside each point.", "scatter(x, y, #{title: \"data\"});"),
    ("heatmap", "heatmap(grid) / heatmap(grid, #{title, row_labels, col_labels, points, classes})", "A 2-D tensor as colours, optionally with points on top.", "heatmap(weights, #{title: \"attention\"});"),
    ("show_images", "show_images(images) / show_images(images, #{columns, labels, title})", "Images [n, h, w] (or [n, h·w]) in a grid.", "show_images(x.slice(0, 0, 8));"),
    // Text and embeddings
    ("tokenize", "tokenize(text)", "The words of a text: lower-cased runs of letters (punctuation and digits split words off).", "tokenize(\"King, the king.\")"),
    ("load_corpus", "load_corpus(path) / load_corpus(path, min_count)", "Reads and tokenises a text file (.gz allowed), one sentence per line, keeping words seen at least min_count (5) times.", "let c = load_corpus(\"data/english_pd_corpus.txt.gz\");"),
    ("top_words", "corpus.top_words(n)", "The n most frequent words of a corpus with their counts.", "c.top_words(10)"),
    ("word2vec", "word2vec(corpus, #{architecture, dim, window, negative, sample, epochs, alpha, min_alpha, seed})", "Trains Word2Vec (\"skipgram\" or \"cbow\", negative sampling) on all cores; returns #{vectors, seconds, words_per_sec, ...}.", "let r = word2vec(c, #{architecture: \"cbow\", epochs: 5});"),
    ("nearest", "vectors.nearest(word, k)", "The k words with the most similar vectors (cosine), as #{word, cosine}.", "r.vectors.nearest(\"king\", 5)"),
    ("analogy", "vectors.analogy(a, minus, plus, k)", "The k words nearest to a − minus + plus, leaving out the three (king − man + woman).", "r.vectors.analogy(\"king\", \"man\", \"woman\", 5)"),
    ("most_similar", "vectors.most_similar(positive, negative, k)", "The k words nearest to the sum of the positive words' unit vectors minus the negative ones'.", "v.most_similar([\"paris\", \"italy\"], [\"france\"], 3)"),
    ("similarity", "vectors.similarity(a, b)", "Cosine similarity of two words' vectors.", "v.similarity(\"king\", \"queen\")"),
    ("vectors_of", "vectors.vectors_of(words)", "The vectors of a list of words as a tensor [n, dim].", "let m = v.vectors_of([\"king\", \"queen\"]);"),
    ("contains", "vectors.contains(word)", "Whether a word has a vector.", "v.contains(\"queen\")"),
    ("dim", "vectors.dim()", "The length of each word vector.", "v.dim()"),
    ("evaluate_analogies", "vectors.evaluate_analogies(path)", "Scores an analogy test set (questions-words.txt format) on the questions whose words all have vectors: #{accuracy, correct, total, skipped, sections}.", "v.evaluate_analogies(\"data/questions-words.txt\")"),
    ("save_word_vectors", "vectors.save_word_vectors(path) / vectors.save_word_vectors(path, limit)", "Writes the word2vec text format that gensim and other tools read (only the `limit` most frequent words when given).", "v.save_word_vectors(\"vectors.txt\");"),
    ("load_word_vectors", "load_word_vectors(path)", "Reads word vectors in the word2vec text format.", "let v = load_word_vectors(\"vectors.txt\");"),
    ("load_chars", "load_chars(path)", "A text file as character ids for character-level models: #{ids: tensor [n], chars: the characters, id i is chars[i]}.", "let t = load_chars(\"data/shakespeare_tragedies.txt\");"),
    ("pca", "pca(x, k)", "Principal component analysis of the rows of x [n, d]: the k directions of largest variance. Use .transform(x), .inverse_transform(z), .components, .mean, .explained_ratio.", "let p = pca(x, 2); let xy = p.transform(x);"),
    ("transform", "pca.transform(x)", "Coordinates of rows of x along the principal components.", "p.transform(x)"),
    ("inverse_transform", "pca.inverse_transform(z)", "Points in the data space from their principal-component coordinates.", "p.inverse_transform(z)"),
    ("components", "pca.components", "The principal directions as rows [k, d].", "p.components"),
    ("explained_ratio", "pca.explained_ratio", "Each component's share of the total variance.", "p.explained_ratio"),
    // Experiments
    ("playground", "playground(#{data, noise, n, train_ratio, features, hidden, activation, regularization, reg_rate, lr, batch_size, epochs, optimizer, seed, draw})", "The TensorFlow-Playground lab: trains a small net on a 2-D data set (circle, xor, gauss, spiral, plane, gaussians), redrawing the decision boundary as it learns; returns train/test loss and accuracy.", "playground(#{data: \"xor\", hidden: [4], epochs: 50})"),
    ("playground_data", "playground_data(name, n, noise, seed)", "One of the Playground's data sets: points [n, 2] and labels (or values).", "let d = playground_data(\"spiral\", 400, 0.1, 0);"),
    ("features", "features(points, names)", "The Playground's input features of points [n, 2]: x1, x2, x1^2, x2^2, x1x2, sin(x1), sin(x2).", "features(d.x, [\"x1\", \"x2\", \"x1x2\"])"),
    ("sweep", "sweep(#{name: [values...], ...}, |settings| #{...results}) / sweep(..., #{csv: path})", "Runs the function for every combination of settings and shows the results as a table (and a CSV file).", "sweep(#{width: [4, 32]}, |s| #{acc: train_width(s.width)})"),
    // Notebook
    ("check", "check(condition, \"what this shows\")", "States a claim of the lesson; a failed check is reported and fails a non-interactive run.", "check(acc > 0.9, \"the model learned\");"),
    ("help", "help() / help(name)", "Lists the functions, or documents one.", "help(\"fit\")"),
    ("set_threads", "set_threads(n)", "How many worker threads the engine uses.", "set_threads(1);"),
    ("threads", "threads()", "The number of worker threads.", "threads()"),
    ("time_ms", "time_ms()", "Milliseconds since the notebook started (for timing).", "let t0 = time_ms();"),
];

/// The entry for `name`.
pub fn find(name: &str) -> Option<&'static Entry> {
    HELP.iter().find(|e| e.name == name)
}

/// The help text for `name`, or a list of close names.
pub fn describe(name: &str) -> String {
    match find(name) {
        Some(e) => format!("{}\n    {}\n    example: {}", e.signature, e.doc, e.example),
        None => {
            let close: Vec<&str> = HELP
                .iter()
                .map(|e| e.name)
                .filter(|n| n.contains(name) || name.contains(n))
                .collect();
            if close.is_empty() {
                format!("no function `{name}`; help() lists them all")
            } else {
                format!("no function `{name}`; did you mean {}?", close.join(", "))
            }
        }
    }
}

/// Registers `help()` and `help(name)`.
pub fn register(e: &mut Engine, host: SharedHost) {
    let h = host.clone();
    e.register_fn("help", move || {
        let names: Vec<&str> = HELP.iter().map(|e| e.name).collect();
        let mut text = String::from("Functions (help(\"name\") for one):\n");
        for row in names.chunks(6) {
            text.push_str(&format!(
                "  {}\n",
                row.iter()
                    .map(|n| format!("{n:<18}"))
                    .collect::<String>()
                    .trim_end()
            ));
        }
        h.borrow_mut()
            .emit(Output::Text(text.trim_end().to_string()));
    });
    let h = host;
    e.register_fn("help", move |name: &str| {
        h.borrow_mut().emit(Output::Text(describe(name)))
    });
}
