//! The wgpu device: adapter choice, real limits, compiled pipelines, buffer allocation,
//! kernel launches and read-back. Every failure names the adapter and the kernel.

use super::buffer::{size_class, GpuBuffer, Pool};
use super::kernels::{self, Kernel};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use wgpu::util::DeviceExt;

/// How long a read-back may wait for the device before it is reported as hung.
const WAIT: Duration = Duration::from_secs(600);
/// Free buffers kept for reuse, at most.
const POOL_LIMIT: u64 = 1 << 30;

/// The launch geometry of a kernel.
#[derive(Clone, Copy, Debug)]
pub enum Grid {
    /// One thread per element (256-thread workgroups).
    Threads(usize),
    /// One 256-thread workgroup per row.
    Rows(usize),
    /// Explicit workgroup counts.
    Groups(u32, u32, u32),
}

pub struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pipelines: Mutex<HashMap<(&'static str, &'static str), wgpu::ComputePipeline>>,
    pub(crate) pool: Pool,
    /// The first error the device reported outside an error scope (validation, device loss).
    failure: Arc<Mutex<Option<String>>>,
}

/// Adapters in order of preference: discrete, integrated, virtual, then software.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

pub fn adapters() -> Vec<wgpu::Adapter> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let mut all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    all.retain(|a| {
        a.get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
    });
    all.sort_by_key(|a| rank(a.get_info().device_type));
    all
}

pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

impl Context {
    pub fn new() -> std::result::Result<Context, String> {
        let adapter = adapters().into_iter().next().ok_or_else(|| {
            "wgpu: no adapter with compute shaders found (install a Vulkan driver, e.g. \
             mesa-vulkan-drivers and libvulkan1 for the lavapipe CPU driver)"
                .to_string()
        })?;
        let info = adapter.get_info();
        // The adapter's real limits: an embedding matrix exceeds the default 128 MiB binding.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gradlens"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| format!("wgpu ({}): could not open the device: {e}", describe(&info)))?;
        let failure = Arc::new(Mutex::new(None::<String>));
        let sink = failure.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let sink = failure.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("device lost ({reason:?}): {message}"));
        });
        Ok(Context {
            device,
            queue,
            info,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            pool: Pool::new(POOL_LIMIT),
            failure,
        })
    }

    pub fn name(&self) -> String {
        describe(&self.info)
    }

    fn error(&self, what: &str, detail: impl std::fmt::Display) -> Error {
        Error::Device(format!("wgpu ({}): {what}: {detail}", self.name()))
    }

    /// Fails with the device's pending error, if any, attributed to `what`.
    fn check(&self, what: &str) -> Result<()> {
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some(e) => Err(self.error(what, e)),
            None => Ok(()),
        }
    }

    fn pipeline(&self, kernel: Kernel) -> Result<wgpu::ComputePipeline> {
        let key = (kernel.file, kernel.entry);
        if let Some(p) = self
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let what = format!("kernel {}:{}", kernel.file, kernel.entry);
        let source =
            kernels::source(kernel.file).ok_or_else(|| self.error(&what, "no such shader file"))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.file),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: None,
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(self.error(&what, format!("shader failed validation: {e}")));
        }
        self.pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A buffer of `len` floats with undefined contents (every kernel writes all of its output).
    pub fn alloc(&self, len: usize, what: &str) -> Result<GpuBuffer> {
        let bytes = len as u64 * 4;
        let max = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > max {
            return Err(self.error(
                what,
                format!(
                    "a buffer of {} MiB exceeds the adapter's limit of {} MiB",
                    bytes >> 20,
                    max >> 20
                ),
            ));
        }
        let class = size_class(bytes).min(max).max(bytes.max(16));
        if let Some(buffer) = self.pool.take(class) {
            return Ok(GpuBuffer::new(buffer, len));
        }
        let mut buffer = self.create(class);
        if buffer.is_err() {
            // Pooled buffers may hold the memory that is missing: free them and retry once.
            self.pool.clear();
            buffer = self.create(class);
        }
        buffer
            .map(|b| GpuBuffer::new(b, len))
            .map_err(|e| self.error(what, e))
    }

    fn create(&self, bytes: u64) -> std::result::Result<wgpu::Buffer, String> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(format!(
                "out of device memory allocating {} MiB: {e}",
                bytes >> 20
            )),
            None => Ok(buffer),
        }
    }

    pub fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        self.upload_bytes(bytemuck::cast_slice(data), data.len(), "upload")
    }

    pub fn upload_u32(&self, data: &[u32]) -> Result<GpuBuffer> {
        self.upload_bytes(bytemuck::cast_slice(data), data.len(), "upload")
    }

    fn upload_bytes(&self, bytes: &[u8], len: usize, what: &str) -> Result<GpuBuffer> {
        let buffer = self.alloc(len, what)?;
        if !bytes.is_empty() {
            self.queue.write_buffer(buffer.raw(), 0, bytes);
        }
        self.check(what)?;
        Ok(buffer)
    }

    pub fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        let buffer = self.alloc(len, "zeros")?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(buffer.raw(), 0, None);
        self.queue.submit([encoder.finish()]);
        self.check("zeros")?;
        Ok(buffer)
    }

    /// Runs `kernel` with `params` at binding 0 and `bindings` at their binding numbers.
    /// Work is submitted at once but not waited for: nothing is read back between ops.
    pub fn launch(
        &self,
        kernel: Kernel,
        params: &[u32],
        bindings: &[(u32, &GpuBuffer)],
        grid: Grid,
    ) -> Result<()> {
        let pipeline = self.pipeline(kernel)?;
        // Every kernel's parameter struct fits 64 bytes; unused words stay 0.
        let mut words = params.to_vec();
        words.resize(words.len().max(16), 0);
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(kernel.entry),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(bindings.iter().map(|(b, buf)| wgpu::BindGroupEntry {
            binding: *b,
            resource: buf.raw().as_entire_binding(),
        }));
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let (x, y, z) = self.groups(grid);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            if x > 0 && y > 0 && z > 0 {
                pass.dispatch_workgroups(x, y, z);
            }
        }
        self.queue.submit([encoder.finish()]);
        self.check(&format!("kernel {}:{}", kernel.file, kernel.entry))
    }

    /// Workgroup counts, spreading a long 1-D launch over two dimensions.
    fn groups(&self, grid: Grid) -> (u32, u32, u32) {
        let groups = match grid {
            Grid::Groups(x, y, z) => return (x, y, z),
            Grid::Threads(n) => n.div_ceil(256),
            Grid::Rows(r) => r,
        };
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as usize;
        if groups <= max {
            (groups as u32, 1, 1)
        } else {
            (max as u32, groups.div_ceil(max) as u32, 1)
        }
    }

    /// Waits for every submitted kernel.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(WAIT),
            })
            .map_err(|e| self.error("synchronize", format!("waiting for the device: {e}")))?;
        self.check("synchronize")
    }

    /// Copies a buffer back to the host, waiting for every submitted kernel that writes it.
    pub fn download(&self, buffer: &GpuBuffer) -> Result<Vec<f32>> {
        if buffer.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = buffer.len() as u64 * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer.raw(), 0, &staging, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(WAIT),
            })
            .map_err(|e| self.error("read-back", format!("waiting for the device: {e}")))?;
        self.check("read-back")?;
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.error("read-back", e)),
            Err(_) => return Err(self.error("read-back", "the buffer was never mapped")),
        }
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| self.error("read-back", e))?;
        let out = bytemuck::pod_collect_to_vec::<u8, f32>(&view);
        drop(view);
        staging.unmap();
        Ok(out)
    }
}
