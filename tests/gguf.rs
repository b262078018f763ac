//! GGUF: dequantisation against the `gguf` package, the SmolLM2 file against transformers'
//! loading of it, conversion, and bad files.

mod common;
use common::gguf_writer::*;
use common::*;
use gradlens::gguf::{dequantize, GgmlType};

fn base64(s: &str) -> Vec<u8> {
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            _ => 63,
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | table(c) << (18 - 6 * i));
        out.extend_from_slice(&v.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn every_quantisation_matches_the_gguf_package() {
    let fx = fixture("gguf-quants");
    let types = [
        ("F32", GgmlType::F32),
        ("F16", GgmlType::F16),
        ("BF16", GgmlType::BF16),
        ("Q8_0", GgmlType::Q8_0),
        ("Q4_0", GgmlType::Q4_0),
        ("Q4_1", GgmlType::Q4_1),
        ("Q5_0", GgmlType::Q5_0),
        ("Q5_1", GgmlType::Q5_1),
        ("Q4_K", GgmlType::Q4K),
        ("Q5_K", GgmlType::Q5K),
        ("Q6_K", GgmlType::Q6K),
    ];
    for (name, t) in types {
        let bytes = base64(fx[name]["bytes"].as_str().unwrap());
        let want = floats(&fx[name]["values"]);
        let got = dequantize(t, &bytes, want.len()).unwrap();
        assert_eq!(got, want, "{name}");
    }
}

use gradlens::attribution::{self, methods, Settings, TargetSpec};

#[test]
fn smollm2_tokenises_like_transformers() {
    let Some(model) = smollm2() else { return };
    let fx = fixture("smollm2");
    for (text, want) in fx["tokenizer_cases"].as_object().unwrap() {
        assert_eq!(
            model.tokenizer.encode(text, true).unwrap(),
            ids(want),
            "{text:?}"
        );
    }
}

#[test]
fn smollm2_logits_match_transformers() {
    let Some(model) = smollm2() else { return };
    let fx = fixture("smollm2");
    let ids_ = model.tokenize(fx["prompt"].as_str().unwrap()).unwrap();
    assert_eq!(ids_, ids(&fx["token_ids"]));
    let logits = attribution::next_token_logits(&model, &model.embed(&ids_).unwrap()).unwrap();
    assert_close(&logits, &floats(&fx["last_logits"]), 1e-3, "smollm2 logits");
    assert_eq!(model.info.layers, 30);
    assert_eq!(model.info.key_value_heads, 3);
}

#[test]
fn smollm2_input_x_gradient_and_saliency_match_captum() {
    let Some(model) = smollm2() else { return };
    let fx = fixture("smollm2");
    let prompt = fx["prompt"].as_str().unwrap();
    let opts = Settings::default();
    let ixg = attribution::attribute(&model, prompt, &methods::InputXGradient, &opts).unwrap();
    assert_eq!(
        ixg.target.id,
        Some(fx["target"].as_u64().unwrap() as u32),
        "same top token as transformers"
    );
    assert_close(
        &ixg.scores,
        &floats(&fx["input_x_gradient"]),
        1e-2,
        "input x gradient",
    );
    let sal = attribution::attribute(&model, prompt, &methods::Saliency, &opts).unwrap();
    assert_close(&sal.scores, &floats(&fx["saliency"]), 1e-2, "saliency");
}

/// Gemma 3 270M (Q4_K_M, its matrices in Q5_0, Q4_K, Q6_K and Q8_0) against transformers
/// loading the same file: the sentencepiece tokenizer rebuilt from the file on awkward text,
/// logits (a sample of the 262144, the largest among them), the greedy continuation, and
/// Captum's input x gradient and saliency through the scaled embeddings.
#[test]
fn gemma3_270m_matches_transformers() {
    let Some(model) = gemma3() else { return };
    let fx = fixture("gemma3-270m");
    for (text, want) in fx["tokenizer_cases"].as_object().unwrap() {
        assert_eq!(
            model.tokenizer.encode(text, true).unwrap(),
            ids(want),
            "{text:?}"
        );
    }
    let prompt = fx["prompt"].as_str().unwrap();
    let ids_ = model.tokenize(prompt).unwrap();
    assert_eq!(ids_, ids(&fx["token_ids"]));
    let logits = attribution::next_token_logits(&model, &model.embed(&ids_).unwrap()).unwrap();
    let sample: Vec<f32> = ids(&fx["logit_ids"])
        .iter()
        .map(|&i| logits[i as usize])
        .collect();
    assert_close(&sample, &floats(&fx["logit_values"]), 1e-4, "gemma3 logits");
    let generated = gradlens::generation::greedy(&model, &ids_, 4, false).unwrap();
    assert_eq!(generated, ids(&fx["greedy"]));
    let opts = Settings::default();
    let ixg = attribution::attribute(&model, prompt, &methods::InputXGradient, &opts).unwrap();
    assert_eq!(ixg.target.id, Some(fx["target"].as_u64().unwrap() as u32));
    assert_close(
        &ixg.scores,
        &floats(&fx["input_x_gradient"]),
        1e-4,
        "gemma3 input x gradient",
    );
    let sal = attribution::attribute(&model, prompt, &methods::Saliency, &opts).unwrap();
    assert_close(
        &sal.scores,
        &floats(&fx["saliency"]),
        1e-4,
        "gemma3 saliency",
    );
}

#[test]
fn smollm2_continues_the_capital_of_france_with_paris() {
    let Some(model) = smollm2() else { return };
    let fx = fixture("smollm2");
    let ids_ = model.tokenize("The capital of France is").unwrap();
    let generated = gradlens::generation::greedy(&model, &ids_, 2, false).unwrap();
    assert_eq!(generated, ids(&fx["greedy"])[..2].to_vec());
    let text: String = generated
        .iter()
        .map(|&i| model.tokenizer.token_text(i))
        .collect();
    assert_eq!(text, " Paris.");
    let _ = TargetSpec::Auto;
}

const PROMPT: &str = "Language models predict the next";

#[test]
fn a_gguf_written_like_llama_cpp_loads_as_the_original_model() {
    let path = tiny_llama_gguf("roundtrip", |_, _| {});
    let from_gguf = gradlens::Model::load(&path, gradlens::Device::Cpu).unwrap();
    let original = tiny("tiny-llama");
    let ids_ = original.tokenize(PROMPT).unwrap();
    assert_eq!(
        from_gguf.tokenize(PROMPT).unwrap(),
        ids_,
        "tokenizer rebuilt from tokenizer.ggml.*"
    );
    let a = attribution::next_token_logits(&from_gguf, &from_gguf.embed(&ids_).unwrap()).unwrap();
    let b = attribution::next_token_logits(&original, &original.embed(&ids_).unwrap()).unwrap();
    assert_close(&a, &b, 1e-5, "logits through the un-permuted Q/K");
    // And converted to a folder, it is the same model again.
    let out = path.with_extension("hf");
    let _ = std::fs::remove_dir_all(&out);
    gradlens::convert::convert(&path, &out, "f32".parse().unwrap()).unwrap();
    let converted = gradlens::Model::load(&out, gradlens::Device::Cpu).unwrap();
    let c = attribution::next_token_logits(&converted, &converted.embed(&ids_).unwrap()).unwrap();
    assert_eq!(a, c);
    assert!(
        gradlens::convert::convert(&path, &out, "f32".parse().unwrap())
            .unwrap_err()
            .to_string()
            .contains("not empty")
    );
}

/// Llama 3 (`llama`, its rope scaling as `rope_freqs.weight`), Qwen2, Qwen3, Phi-3 (its fused
/// projections as llama.cpp keeps them) and Gemma 2 and 3 (their norms as 1 + w) written as llama.cpp writes them load as the folder they came from:
/// the same tokens and logits; `gradlens convert` turns each back into that folder.
/// llama.cpp keeps no sliding window for these architectures (Mistral is `llama` there, and
/// released Qwen2.5 configs leave `use_sliding_window` off), so the tiny Qwen2's window is
/// turned off in the folder it is compared with.
#[test]
fn llama_family_ggufs_load_as_their_folders() {
    for (folder, arch) in [
        ("tiny-llama3", "llama"),
        ("tiny-qwen2", "qwen2"),
        ("tiny-qwen3", "qwen3"),
        ("tiny-qwen3-yarn", "qwen3"),
        ("tiny-phi3", "phi3"),
        ("tiny-phi3-longrope", "phi3"),
        ("tiny-phi3-partial", "phi3"),
        ("tiny-gemma2", "gemma2"),
        ("tiny-gemma3", "gemma3"),
    ] {
        let path = common::gguf_writer::tiny_gguf(folder, arch, folder, |_, _| {});
        let from_gguf = gradlens::Model::load(&path, gradlens::Device::Cpu).unwrap();
        let original = match arch {
            // llama.cpp fixes what the tiny Gemma varies: the local RoPE base (10000, not
            // 10), one global layer in six (so both of two are local) and the query scale
            // (head_dim's, not 12's).
            "gemma3" => tiny_with_config(folder, |cfg| {
                cfg["rope_parameters"]["sliding_attention"]["rope_theta"] = 10000.0.into();
                cfg["layer_types"] = serde_json::json!(["sliding_attention", "sliding_attention"]);
                cfg["query_pre_attn_scalar"] = 16.into();
            }),
            // Gemma 2's caps, window and layer pattern are in the file; its query scale is not.
            "gemma2" => tiny_with_config(folder, |cfg| cfg["query_pre_attn_scalar"] = 16.into()),
            _ => without_sliding_window(folder),
        };
        assert_eq!(from_gguf.arch, original.arch, "{folder}");
        let ids_ = original.tokenize(PROMPT).unwrap();
        assert_eq!(
            from_gguf.tokenize(PROMPT).unwrap(),
            ids_,
            "{folder}: tokens"
        );
        let a =
            attribution::next_token_logits(&from_gguf, &from_gguf.embed(&ids_).unwrap()).unwrap();
        let b = attribution::next_token_logits(&original, &original.embed(&ids_).unwrap()).unwrap();
        assert_close(&a, &b, 1e-5, &format!("{folder} logits from its GGUF"));
        // And converted back to a folder (Gemma's norms lose llama.cpp's + 1), the same model.
        let out = path.with_extension("hf");
        let _ = std::fs::remove_dir_all(&out);
        gradlens::convert::convert(&path, &out, "f32".parse().unwrap()).unwrap();
        let converted = gradlens::Model::load(&out, gradlens::Device::Cpu).unwrap();
        let c =
            attribution::next_token_logits(&converted, &converted.embed(&ids_).unwrap()).unwrap();
        assert_close(&c, &a, 1e-6, &format!("{folder} converted from its GGUF"));
    }
}

/// The encoders written as llama.cpp's converter writes its `bert` architecture (BERT with a
/// WordPiece vocabulary, RoBERTa with its head and byte-level BPE, XLM-R with a Unigram
/// vocabulary) load as the folders they came from: the same tokens (but for XLM-R, whose
/// fixture tokenizer is a BPE), hidden states and class gradients, and `convert` gives them back.
#[test]
fn bert_family_ggufs_load_as_their_folders() {
    for folder in ["tiny-bert", "tiny-roberta", "tiny-xlm-roberta"] {
        let path = tiny_encoder_gguf(folder, folder);
        let from_gguf = gradlens::Model::load(&path, gradlens::Device::Cpu).unwrap();
        let original = tiny(folder);
        let ids_ = from_gguf.tokenize(PROMPT).unwrap();
        if folder != "tiny-xlm-roberta" {
            assert_eq!(ids_, original.tokenize(PROMPT).unwrap(), "{folder}: tokens");
        }
        let a = hidden_states(&from_gguf, &ids_);
        let b = hidden_states(&original, &ids_);
        assert_close(
            &a,
            &b,
            1e-5,
            &format!("{folder} hidden states from its GGUF"),
        );
        assert_eq!(
            from_gguf.info.max_positions, original.info.max_positions,
            "{folder}: positions"
        );
        if folder == "tiny-roberta" {
            let opts = Settings {
                target: TargetSpec::Class(1),
                ..with_map()
            };
            let saliency = method("saliency", &[]);
            let x = attribution::attribute(&from_gguf, PROMPT, saliency.as_ref(), &opts).unwrap();
            let y = attribution::attribute(&original, PROMPT, saliency.as_ref(), &opts).unwrap();
            assert_close(&x.scores, &y.scores, 1e-5, "tiny-roberta class gradient");
            assert!((x.target_score - y.target_score).abs() < 1e-5);
        }
        let out = path.with_extension("hf");
        let _ = std::fs::remove_dir_all(&out);
        gradlens::convert::convert(&path, &out, "f32".parse().unwrap()).unwrap();
        let converted = gradlens::Model::load(&out, gradlens::Device::Cpu).unwrap();
        assert_eq!(
            converted.tokenize(PROMPT).unwrap(),
            ids_,
            "{folder}: converted tokens"
        );
        let c = hidden_states(&converted, &ids_);
        assert_close(&c, &a, 1e-6, &format!("{folder} converted from its GGUF"));
    }
}

/// A `t5` (Unigram) vocabulary keeps its scores: "cats" is "▁ca" + "ts" (-3), not the longest
/// first piece "▁cat" + "s" (-4); runs of spaces collapse, "▁" is prepended, unknown characters
/// fuse into one `<unk>`, and each sequence is `<s> … </s>`.
#[test]
fn a_unigram_vocabulary_tokenises_by_its_scores() {
    let pieces = [
        ("<s>", 0.0, 3),
        ("<pad>", 0.0, 3),
        ("</s>", 0.0, 3),
        ("<unk>", 0.0, 2),
        ("\u{2581}the", -1.0, 1),
        ("\u{2581}", -2.0, 1),
        ("t", -3.0, 1),
        ("h", -3.0, 1),
        ("e", -3.0, 1),
        ("\u{2581}cat", -2.0, 1),
        ("s", -2.0, 1),
        ("c", -4.0, 1),
        ("a", -4.0, 1),
        ("\u{2581}ca", -1.5, 1),
        ("ts", -1.5, 1),
    ];
    let path = tiny_encoder_gguf("tiny-xlm-roberta", "unigram");
    let meta = vec![
        ("general.architecture", Meta::Str("bert".into())),
        ("tokenizer.ggml.model", Meta::Str("t5".into())),
        (
            "tokenizer.ggml.tokens",
            Meta::Strs(pieces.iter().map(|p| p.0.to_string()).collect()),
        ),
        (
            "tokenizer.ggml.scores",
            Meta::F32s(pieces.iter().map(|p| p.1).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Meta::I32s(pieces.iter().map(|p| p.2).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Meta::U32(0)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(2)),
    ];
    write_gguf(&path, &meta, &[]);
    let gguf = gradlens::gguf::GgufFile::open(&path).unwrap();
    let (json, _) = gradlens::gguf::tokenizer::tokenizer_json(&gguf).unwrap();
    let tokenizer: tokenizers::Tokenizer = json.to_string().parse().unwrap();
    let ids = |text: &str| tokenizer.encode(text, true).unwrap().get_ids().to_vec();
    assert_eq!(ids("the  cats"), [0, 4, 13, 14, 2]);
    assert_eq!(ids("the xyz"), [0, 4, 5, 3, 2]);
}

/// A file whose pre-tokenizer is `qwen2` gets Qwen2's: NFC normalisation first (a decomposed
/// "é" is the composed one), then its split regex.
#[test]
fn the_qwen2_pre_tokenizer_normalises_to_nfc() {
    let set_pre = |pre: &'static str| {
        move |meta: &mut Vec<(&str, Meta)>, _: &mut Vec<(String, Vec<usize>, u32, Vec<u8>)>| {
            for (key, value) in meta.iter_mut() {
                if *key == "tokenizer.ggml.pre" {
                    *value = Meta::Str(pre.into());
                }
            }
        }
    };
    let (composed, decomposed) = ("caf\u{e9} 2026", "cafe\u{301} 2026");
    let qwen = common::gguf_writer::tiny_gguf("tiny-qwen2", "qwen2", "qwen-pre", set_pre("qwen2"));
    let qwen = gradlens::Model::load(&qwen, gradlens::Device::Cpu).unwrap();
    assert_eq!(
        qwen.tokenize(decomposed).unwrap(),
        qwen.tokenize(composed).unwrap()
    );
    let plain =
        common::gguf_writer::tiny_gguf("tiny-qwen2", "qwen2", "plain-pre", set_pre("default"));
    let plain = gradlens::Model::load(&plain, gradlens::Device::Cpu).unwrap();
    assert_ne!(
        plain.tokenize(decomposed).unwrap(),
        plain.tokenize(composed).unwrap()
    );
}

fn load_err(path: &std::path::Path) -> String {
    match gradlens::Model::load(path, gradlens::Device::Cpu) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_gguf_files_are_named() {
    let arch = tiny_llama_gguf("arch", |m, _| m[0].1 = Meta::Str("mamba".into()));
    assert!(
        load_err(&arch).contains("unsupported architecture 'mamba"),
        "{}",
        load_err(&arch)
    );

    let quant = tiny_llama_gguf("quant", |_, t| {
        t[0].2 = 10;
        t[0].3.truncate(84);
    });
    let e = load_err(&quant);
    assert!(e.contains("Q2_K is not supported"), "{e}");

    // A NaN constant is refused, not replaced by the default.
    let nan = tiny_llama_gguf("nanfreq", |m, _| m[7].1 = Meta::F32(f32::NAN));
    let e = load_err(&nan);
    assert!(
        e.contains("'llama.rope.freq_base'") && e.contains("not a finite number"),
        "{e}"
    );

    let spm = tiny_llama_gguf("spm", |m, _| m[9].1 = Meta::Str("llama".into()));
    assert!(
        load_err(&spm).contains("tokenizer model 'llama' cannot be rebuilt"),
        "{}",
        load_err(&spm)
    );

    let missing = tiny_llama_gguf("missing", |_, t| {
        t.retain(|(n, ..)| n != "output_norm.weight")
    });
    let e = load_err(&missing);
    assert!(
        e.contains("missing tensor 'model.norm.weight'") && e.contains("missing.gguf"),
        "{e}"
    );

    let whole = std::fs::read(tiny_llama_gguf("whole", |_, _| {})).unwrap();
    let cut = whole_path("truncated");
    std::fs::write(&cut, &whole[..whole.len() - 1000]).unwrap();
    assert!(
        load_err(&cut).contains("corrupt GGUF file: tensor"),
        "{}",
        load_err(&cut)
    );
    assert!(
        load_err(&cut).contains("runs past the end of the file"),
        "{}",
        load_err(&cut)
    );
    std::fs::write(&cut, &whole[..100]).unwrap();
    assert!(
        load_err(&cut).contains("file ends early"),
        "{}",
        load_err(&cut)
    );
    std::fs::write(&cut, b"NOPE and more bytes").unwrap();
    assert!(
        load_err(&cut).contains("not a GGUF file"),
        "{}",
        load_err(&cut)
    );
}

fn whole_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir()
        .join(format!("gradlens-gguf-{}", std::process::id()))
        .join(format!("{name}.gguf"))
}

#[test]
fn the_converted_smollm2_folder_is_the_gguf_model() {
    let Some(gguf) = smollm2() else { return };
    let folder = root().join("models/smollm2");
    if !folder.join("config.json").exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "models/smollm2 missing under CI=true"
        );
        eprintln!("SKIP: models/smollm2 missing (run scripts/fetch-models.sh)");
        return;
    }
    let hf = gradlens::Model::load(&folder, gradlens::Device::Cpu).unwrap();
    let ids_ = gguf.tokenize("The capital of France is").unwrap();
    assert_eq!(hf.tokenize("The capital of France is").unwrap(), ids_);
    let a = attribution::next_token_logits(&gguf, &gguf.embed(&ids_).unwrap()).unwrap();
    let b = attribution::next_token_logits(&hf, &hf.embed(&ids_).unwrap()).unwrap();
    assert_eq!(a, b);
}

/// `rows × cols` values of ggml type `ty` from a seeded generator: random packed quants with
/// their scales set to finite values of about the size trained weights have.
fn random_blocks(ty: u32, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let uniform = |bits: u64| (bits >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
    let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
    let n = rows * cols;
    match ty {
        1 => (0..n).flat_map(|_| f16(0.1 * uniform(next()))).collect(),
        30 => (0..n)
            .flat_map(|_| half::bf16::from_f32(0.1 * uniform(next())).to_le_bytes())
            .collect(),
        _ => {
            // (values, bytes, [(offset of an f16 scale, its size)]) per block.
            let (per, size, scales): (usize, usize, &[(usize, f32)]) = match ty {
                8 => (32, 34, &[(0, 8e-4)]),
                2 => (32, 18, &[(0, 1.2e-2)]),
                3 => (32, 20, &[(0, 1.2e-2), (2, 5e-2)]),
                6 => (32, 22, &[(0, 6e-3)]),
                7 => (32, 24, &[(0, 6e-3), (2, 5e-2)]),
                12 => (256, 144, &[(0, 2e-4), (2, 3e-4)]),
                13 => (256, 176, &[(0, 1e-4), (2, 3e-4)]),
                14 => (256, 210, &[(208, 1e-4)]),
                other => panic!("no generator for type {other}"),
            };
            let mut out = Vec::with_capacity(n / per * size);
            for _ in 0..n / per {
                let mut block: Vec<u8> = (0..size).map(|_| next() as u8).collect();
                for &(at, scale) in scales {
                    block[at..at + 2].copy_from_slice(&f16(scale * (1.0 + 0.5 * uniform(next()))));
                }
                out.extend(block);
            }
            out
        }
    }
}

/// A random 2-layer Llama whose matrices are all of ggml type `ty` (norms f32), with the
/// tiny fixture's tokenizer: hidden 256 and MLP 512, so every row is whole K-quant blocks.
fn random_llama_gguf(ty: u32) -> std::path::PathBuf {
    tiny_llama_gguf(&format!("random-{ty}"), |meta, tensors| {
        let (d, inter, layers, heads, kv_heads, vocab) = (256, 512, 2, 4, 2, 300);
        for (key, value) in meta.iter_mut() {
            match *key {
                "llama.embedding_length" => *value = Meta::U32(d as u32),
                "llama.feed_forward_length" => *value = Meta::U32(inter as u32),
                "llama.block_count" => *value = Meta::U32(layers),
                _ => {}
            }
        }
        let hd = d / heads;
        let mut seed = ty as u64 * 1000;
        let mut matrix = |name: String, rows: usize, cols: usize| {
            seed += 1;
            (
                name,
                vec![rows, cols],
                ty,
                random_blocks(ty, rows, cols, seed),
            )
        };
        let ones = |name: String| {
            let v: Vec<u8> = (0..d)
                .flat_map(|i| (1.0f32 + 0.01 * (i % 7) as f32).to_le_bytes())
                .collect();
            (name, vec![d], 0u32, v)
        };
        let mut t = vec![
            matrix("token_embd.weight".into(), vocab, d),
            ones("output_norm.weight".into()),
        ];
        for l in 0..layers {
            let b = format!("blk.{l}");
            t.push(ones(format!("{b}.attn_norm.weight")));
            t.push(ones(format!("{b}.ffn_norm.weight")));
            t.push(matrix(format!("{b}.attn_q.weight"), heads * hd, d));
            t.push(matrix(format!("{b}.attn_k.weight"), kv_heads * hd, d));
            t.push(matrix(format!("{b}.attn_v.weight"), kv_heads * hd, d));
            t.push(matrix(format!("{b}.attn_output.weight"), d, heads * hd));
            t.push(matrix(format!("{b}.ffn_gate.weight"), inter, d));
            t.push(matrix(format!("{b}.ffn_up.weight"), inter, d));
            t.push(matrix(format!("{b}.ffn_down.weight"), d, inter));
        }
        *tensors = t;
    })
}

/// Every stored format computes what its f32 decode computes: logits to 1e-5 and
/// attributions to 1e-4 of the largest, through the permuted Q/K rows of a llama.cpp file.
#[test]
fn every_gguf_format_computed_as_stored_matches_its_f32_decode() {
    for (ty, label) in FORMATS {
        assert_stored_matches_f32(
            &random_llama_gguf(ty),
            PROMPT,
            label,
            gradlens::Device::Cpu,
            &STORED_CHECK_METHODS,
        );
    }
}

/// Every stored format: its GGML type id and label.
const FORMATS: [(u32, &str); 10] = [
    (1, "f16"),
    (30, "bf16"),
    (8, "q8_0"),
    (2, "q4_0"),
    (3, "q4_1"),
    (6, "q5_0"),
    (7, "q5_1"),
    (12, "q4_k"),
    (13, "q5_k"),
    (14, "q6_k"),
];

/// On wgpu and CUDA (the emulator without a GPU), every format computed as stored (decoded in
/// the kernels) matches its f32 decode on the same device: saliency for each (the CI devices
/// run on the CPU, slowly), and the rules, whose LRP-γ decodes a whole matrix, on one.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn every_gguf_format_computed_as_stored_on_a_gpu_matches_its_f32_decode() {
    let mut devices = Vec::new();
    #[cfg(feature = "wgpu")]
    if common::wgpu_backend().is_some() {
        devices.push(gradlens::Device::Wgpu);
    }
    #[cfg(feature = "cuda")]
    if common::cuda_backend().is_some() {
        devices.push(gradlens::Device::Cuda);
    }
    for device in devices {
        for (ty, label) in FORMATS {
            let methods: &[&str] = match ty {
                12 => &["saliency", "attnlrp", "lrp-gamma"],
                _ => &["saliency"],
            };
            let path = random_llama_gguf(ty);
            assert_stored_matches_f32(&path, PROMPT, label, device, methods);
        }
    }
}

/// Runs `A · op(W)` by each kernel of a backend that a test compares, named.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
type Products<'a> = &'a dyn Fn(
    &gradlens::tensor::Storage,
    &gradlens::tensor::Storage,
    &gradlens::backend::MatmulSpec,
) -> Vec<(&'static str, gradlens::tensor::Storage)>;

/// A GPU's stored-weight kernels against the CPU's, on shapes that are not multiples of the
/// block or the tile: x·Wᵀ and g·W by every kernel `products` runs, the embedding look-up and
/// the whole-matrix decode, with and without a row order.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn stored_weight_kernels_match_the_cpu(
    gpu: &dyn gradlens::backend::Backend,
    upload: &dyn Fn(&gradlens::tensor::StoredMatrix) -> gradlens::tensor::Storage,
    products: Products,
) {
    use gradlens::backend::{backend_for, MatmulSpec};
    use gradlens::gguf::GgmlType;
    use gradlens::tensor::{Storage, StoredBytes, StoredMatrix};
    let device = gpu.device();
    for (ty, label) in FORMATS {
        let format = GgmlType::from_id(ty).unwrap();
        // 67 rows; columns of whole blocks but not whole 64-wide tiles where blocks allow, and
        // for f16/bf16 an odd count too (not whole groups of eight: the per-value kernel).
        let rows = 67;
        let widths: &[usize] = match format.block().0 {
            256 => &[512],
            32 => &[96],
            _ => &[96, 37],
        };
        for (&cols, reversed) in widths.iter().flat_map(|c| [(c, false), (c, true)]) {
            let bytes = random_blocks(ty, rows, cols, ty as u64);
            let order = reversed.then(|| (0..rows as u32).rev().collect::<Vec<u32>>());
            let what = format!("{device} {label} [{rows}, {cols}] (row order: {reversed})");
            let matrix =
                StoredMatrix::new(format, rows, cols, StoredBytes::Owned(bytes), order).unwrap();
            let gpu_w = upload(&matrix);
            let cpu_w = Storage::Stored(std::sync::Arc::new(matrix));
            let cpu = backend_for(gradlens::Device::Cpu).unwrap();
            let want = cpu.download(&cpu_w).unwrap();
            assert_eq!(gpu.download(&gpu_w).unwrap(), want, "{what}: decode");
            let ids = [5u32, 0, 66, 5, 31];
            assert_eq!(
                gpu.download(&gpu.gather_rows(&gpu_w, &ids, cols).unwrap())
                    .unwrap(),
                cpu.download(&cpu.gather_rows(&cpu_w, &ids, cols).unwrap())
                    .unwrap(),
                "{what}: gather"
            );
            for (m, trans_b) in [(5, true), (5, false), (70, true), (70, false)] {
                let (n, k) = if trans_b { (rows, cols) } else { (cols, rows) };
                let spec = MatmulSpec {
                    batch: 2,
                    m,
                    n,
                    k,
                    trans_a: false,
                    trans_b,
                    a_batched: true,
                    b_batched: false,
                };
                let a = rand(2 * m * k, 7, 1.0);
                let want = cpu
                    .download(
                        &cpu.matmul(&cpu.upload(a.clone()).unwrap(), &cpu_w, &spec)
                            .unwrap(),
                    )
                    .unwrap();
                for (kernel, got) in products(&gpu.upload(a.clone()).unwrap(), &gpu_w, &spec) {
                    assert_close(
                        &gpu.download(&got).unwrap(),
                        &want,
                        1e-5,
                        &format!("{what}: {m} rows, trans_b {trans_b}, {kernel}"),
                    );
                }
            }
        }
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_stored_weight_kernels_match_the_cpu() {
    use gradlens::tensor::Storage;
    let Some(gpu) = common::wgpu_backend() else {
        return;
    };
    stored_weight_kernels_match_the_cpu(
        gpu,
        &|m| Storage::WgpuStored(gpu.upload_stored(m).unwrap()),
        &|a, w, spec| {
            vec![
                (
                    "per-row kernel",
                    gpu.matmul_with(a, w, spec, false).unwrap(),
                ),
                ("tiled kernel", gpu.matmul_with(a, w, spec, true).unwrap()),
            ]
        },
    );
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_stored_weight_kernels_match_the_cpu() {
    use gradlens::backend::Backend;
    use gradlens::tensor::Storage;
    let Some(gpu) = common::cuda_backend() else {
        return;
    };
    stored_weight_kernels_match_the_cpu(
        gpu,
        &|m| Storage::CudaStored(gpu.upload_stored(m).unwrap()),
        &|a, w, spec| vec![("its kernel for the rows", gpu.matmul(a, w, spec).unwrap())],
    );
}

/// The byte offset of tensor `name`'s offset field in a GGUF file written by `write_gguf`.
fn offset_field(bytes: &[u8], name: &str) -> usize {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend(name.as_bytes());
    let at = bytes
        .windows(key.len())
        .position(|w| w == key.as_slice())
        .expect("tensor name in the directory");
    let dims_at = at + key.len();
    let n_dims = u32::from_le_bytes(bytes[dims_at..dims_at + 4].try_into().unwrap()) as usize;
    dims_at + 4 + 8 * n_dims + 4
}

/// What a GGUF claims about its layout is checked: alignment, each tensor's offset, and that
/// its type's size fits between its neighbours (a wrong type read garbage, logit 9.7e9).
#[test]
fn gguf_layout_claims_are_checked() {
    for (alignment, needle) in [(0, "'general.alignment' is"), (3, "not a power of two")] {
        let f = tiny_llama_gguf(&format!("align{alignment}"), |m, _| {
            m.push(("general.alignment", Meta::U32(alignment)))
        });
        let e = load_err(&f);
        assert!(e.contains(needle), "{e}");
    }
    // An F32 tensor relabelled F16: half its bytes are then left unused.
    let retyped = tiny_llama_gguf("retyped", |_, t| t[3].2 = 1);
    let e = load_err(&retyped);
    assert!(e.contains("lie unused between tensor"), "{e}");

    let whole = std::fs::read(tiny_llama_gguf("layout", |_, _| {})).unwrap();
    let patched = |name: &str, change: &dyn Fn(&mut Vec<u8>)| {
        let mut b = whole.clone();
        change(&mut b);
        let p = whole_path(name);
        std::fs::write(&p, b).unwrap();
        load_err(&p)
    };
    let second = "output_norm.weight";
    let e = patched("misaligned", &|b| {
        let at = offset_field(b, second);
        let off = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        b[at..at + 8].copy_from_slice(&(off + 4).to_le_bytes());
    });
    assert!(e.contains("not a multiple of the alignment 32"), "{e}");
    let e = patched("overlap", &|b| {
        let at = offset_field(b, second);
        b[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    });
    assert!(e.contains("overlaps tensor"), "{e}");
    // n_kv of 0: the metadata is then read as the tensor directory.
    let e = patched("nkv0", &|b| b[16..24].copy_from_slice(&0u64.to_le_bytes()));
    assert!(
        e.contains("counts 0 metadata keys, but key 'general.architecture' follows"),
        "{e}"
    );
}
