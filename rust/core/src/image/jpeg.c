/* One JPEG decode with libjpeg-turbo's decoder (mozjpeg's copy, compiled from source by
 * the mozjpeg-sys crate), the way Pillow's JpegDecode.c drives it: default settings
 * (islow IDCT, fancy upsampling), the output colour space and DCT scale Pillow asks for.
 *
 * libjpeg reports a fatal error by calling error_exit, which must not return. Here it
 * longjmps back into ir_jpeg_run, which is C all the way down from the setjmp: no Rust
 * frame is ever crossed, and the caller (image/jpeg.rs) only sees a status and a message.
 * Warnings (corrupt data the decoder recovers from) are ignored, as Pillow ignores them,
 * but one: data that ends before the image does (libjpeg's JWRN_JPEG_EOF; it fills the
 * rest with grey), which Pillow refuses as truncated and so do we. Bytes after the
 * end-of-image marker (a phone's appended video, a vendor trailer) are never read. */

#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "jpeglib.h"
#include "jerror.h"

#define IR_MESSAGE 200
/* Most scans read from one JPEG (libjpeg-turbo's djpeg -maxscans / TurboJPEG's scan limit
 * guard against the same thing): each scan of a progressive JPEG walks every coefficient
 * block, so a small file of many scans would take minutes. Real encoders write about 10. */
#define IR_MAX_SCANS 1000

/* Shared with Rust (#[repr(C)] IrJpeg in jpeg.rs): keep both in step. */
typedef struct {
  /* in */
  unsigned int scale_denom; /* 1, 2, 4 or 8 */
  int gray;                 /* 1: JCS_GRAYSCALE output (Pillow's draft to "L") */
  long max_memory;          /* libjpeg's max_memory_to_use (0: its default) */
  /* out: the header */
  unsigned int width, height;
  int components;
  int color_space; /* J_COLOR_SPACE of the file */
  int adobe;       /* an Adobe APP14 marker was read */
  /* out: what a decode gives */
  unsigned int out_width, out_height;
  int out_components;
  char message[IR_MESSAGE];
} ir_jpeg;

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  int too_many_scans;
  int premature_end; /* libjpeg warned JWRN_JPEG_EOF: the data ended early */
} ir_error;

static void ir_error_exit(j_common_ptr cinfo) {
  ir_error *err = (ir_error *)cinfo->err;
  longjmp(err->jump, 1);
}

/* Called by libjpeg as it reads: stops a JPEG of more than IR_MAX_SCANS scans. */
static void ir_progress(j_common_ptr cinfo) {
  j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
  ir_error *err = (ir_error *)cinfo->err;
  if (dinfo->input_scan_number > IR_MAX_SCANS) {
    err->too_many_scans = 1;
    longjmp(err->jump, 1);
  }
}

static void ir_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Warnings (msg_level -1) are ignored but the premature end of the data; trace messages
 * (msg_level >= 0) too. */
static void ir_emit_message(j_common_ptr cinfo, int msg_level) {
  ir_error *err = (ir_error *)cinfo->err;
  if (msg_level < 0 && err->pub.msg_code == JWRN_JPEG_EOF)
    err->premature_end = 1;
}

/* Read the header of `data` into `job` and, when `out` is not NULL, decode the image into
 * `out` (`out_len` bytes: out_height rows of out_width * out_components samples).
 * Returns 0, or 1 with job->message saying why. */
int ir_jpeg_run(const unsigned char *data, unsigned long len, ir_jpeg *job,
                unsigned char *out, size_t out_len) {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_progress_mgr progress;
  ir_error err;
  char text[JMSG_LENGTH_MAX];

  memset(&cinfo, 0, sizeof(cinfo));
  memset(&progress, 0, sizeof(progress));
  job->message[0] = '\0';
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = ir_error_exit;
  err.pub.output_message = ir_output_message;
  err.pub.emit_message = ir_emit_message;
  err.too_many_scans = 0;
  err.premature_end = 0;
  if (setjmp(err.jump)) {
    if (err.too_many_scans) {
      snprintf(job->message, IR_MESSAGE, "expected at most %d scans, got more",
               IR_MAX_SCANS);
    } else {
      (*cinfo.err->format_message)((j_common_ptr)&cinfo, text);
      if (err.premature_end) /* the error came from the fake end libjpeg inserted */
        snprintf(job->message, IR_MESSAGE, "truncated: the data ended early (%.150s)", text);
      else
        snprintf(job->message, IR_MESSAGE, "%s", text);
    }
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  progress.progress_monitor = ir_progress;
  cinfo.progress = &progress;
  if (job->max_memory > 0)
    cinfo.mem->max_memory_to_use = job->max_memory;
  jpeg_mem_src(&cinfo, data, len);
  jpeg_read_header(&cinfo, TRUE);
  job->width = cinfo.image_width;
  job->height = cinfo.image_height;
  job->components = cinfo.num_components;
  job->color_space = (int)cinfo.jpeg_color_space;
  job->adobe = cinfo.saw_Adobe_marker ? 1 : 0;

  if (job->scale_denom > 1) {
    cinfo.scale_num = 1;
    cinfo.scale_denom = job->scale_denom;
  }
  if (job->gray || cinfo.jpeg_color_space == JCS_GRAYSCALE)
    cinfo.out_color_space = JCS_GRAYSCALE;
  else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK)
    cinfo.out_color_space = JCS_CMYK;
  else
    cinfo.out_color_space = JCS_RGB;
  jpeg_calc_output_dimensions(&cinfo);
  job->out_width = cinfo.output_width;
  job->out_height = cinfo.output_height;
  job->out_components = cinfo.output_components;

  if (out != NULL) {
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    if (stride == 0 || out_len / stride != (size_t)cinfo.output_height ||
        out_len % stride != 0) {
      snprintf(job->message, IR_MESSAGE, "output buffer of %lu bytes for %u x %u x %d",
               (unsigned long)out_len, cinfo.output_width, cinfo.output_height,
               cinfo.output_components);
      jpeg_destroy_decompress(&cinfo);
      return 1;
    }
    jpeg_start_decompress(&cinfo);
    while (cinfo.output_scanline < cinfo.output_height) {
      JSAMPROW row = out + (size_t)cinfo.output_scanline * stride;
      if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
        snprintf(job->message, IR_MESSAGE, "the decoder stopped at row %u of %u",
                 cinfo.output_scanline, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return 1;
      }
    }
    /* Reads on to the end-of-image marker: a file cut after its last scan's data warns
     * there. */
    jpeg_finish_decompress(&cinfo);
    if (err.premature_end) {
      snprintf(job->message, IR_MESSAGE,
               "truncated: expected an end-of-image marker after the last scan, got none");
      jpeg_destroy_decompress(&cinfo);
      return 1;
    }
  }
  jpeg_destroy_decompress(&cinfo);
  return 0;
}
