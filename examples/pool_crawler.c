/* Seed notes: a crawler, map_async over URLs with a callback that parses the pages:
 *   urls = ['https://www.baidu.com', 'http://www.openstack.org', 'https://www.python.org',
 *           'https://help.github.com/', 'http://www.sina.com.cn/', 'http://www.ziawang.com']
 *   def get_page(url): response = requests.get(url); print(response.status_code); return response
 *   def parser(res): ... write each page to a file ...; print(res.url, ' ........end.........')
 *   p = Pool(4); res = p.map_async(get_page, urls, callback=parser); p.close(); p.join()
 * and "multiprocessing.dummy's Pool is the same over threads": from multiprocessing.dummy import Pool as
 * ThreadPool. Here both run side by side, with one API: mproc_thread_pool_create(&p, 4) and
 * mproc_pool_create(&p, &(mproc_pool_opts){.processes = 4}).
 *
 * NO NETWORK: the fetch is simulated. get_page waits 200 ms (the network's latency), then makes the
 * page from the URL (status 200 and some HTML; 404 for the last site, which is gone), so the example
 * runs anywhere and prints the same pages every time. parser prints each page's size and a checksum
 * where the seed writes it to a file. A page travels as bytes: a 4-byte status, then the body.
 *
 * Threads or processes: fetching mostly waits, so a ThreadPool does it as fast as processes and
 * starts at no cost; processes isolate the work (a crash costs one task) and run Python-like CPU-bound
 * parsing in parallel. */
#include "pool_common.h"

static const char *const urls[] = {"https://www.baidu.com",    "http://www.openstack.org", "https://www.python.org",
                                   "https://help.github.com/", "http://www.sina.com.cn/",  "http://www.ziawang.com"};
#define NURLS (sizeof urls / sizeof urls[0])

/* The simulated requests.get(url): a status and a body, made from the URL alone. */
static int get_page(const void *in, size_t len, mproc_task *t) {
  char page[2048];
  int32_t status = strstr((const char *)in, "ziawang") ? 404 : 200;
  nap_ms(200);
  memcpy(page, &status, sizeof status);
  int n =
      snprintf(page + 4, sizeof page - 4, "<html><head><title>%.*s</title></head><body>", (int)len, (const char *)in);
  for (size_t i = 0; status == 200 && i < len % 7 + 3; ++i)
    n += snprintf(page + 4 + n, sizeof page - 4 - (size_t)n, "<p>paragraph %zu of %.*s</p>", i, (int)len,
                  (const char *)in);
  n += snprintf(page + 4 + n, sizeof page - 4 - (size_t)n, "</body></html>");
  printf("%d\n", (int)status); /* print(response.status_code) */
  fflush(stdout);
  return mproc_task_return(t, page, 4 + (size_t)n);
}

typedef struct crawl {
  uint32_t sums[NURLS];
  size_t sizes[NURLS];
} crawl;

/* parser: the whole list of responses, once every page is in. */
static void parser(void *user, mproc_async_result *r) {
  crawl *c = (crawl *)user;
  for (size_t i = 0; i < mproc_async_result_count(r); ++i) {
    const unsigned char *page;
    size_t len;
    int32_t status = 0;
    if (mproc_async_result_item(r, i, (const void **)&page, &len) != 0 || len < 4) continue;
    memcpy(&status, page, sizeof status);
    uint32_t sum = 2166136261u; /* FNV-1a over the body, where the seed writes it to a file */
    for (size_t k = 4; k < len; ++k) sum = (sum ^ page[k]) * 16777619u;
    c->sums[i] = sum;
    c->sizes[i] = len - 4;
    printf("%s  status %d, %zu bytes, checksum %08x ........end.........\n", urls[i], (int)status, len - 4,
           (unsigned)sum);
  }
  fflush(stdout);
}

/* p.map_async(get_page, urls, callback=parser); p.close(); p.join() on this pool. */
static int run(const char *what, mproc_pool *p, crawl *c) {
  if (!p) {
    fprintf(stderr, "%s: %s\n", what, mproc_last_error());
    return 0;
  }
  printf("---- %s with %zu workers\n", what, mproc_pool_size(p));
  fflush(stdout);
  mproc_bytes in[NURLS];
  for (size_t i = 0; i < NURLS; ++i) in[i] = (mproc_bytes){urls[i], strlen(urls[i]) + 1}; /* with its NUL */
  int64_t t0 = mproc_monotonic_ns();
  mproc_async_result *r = NULL;
  int ok = mproc_pool_map_async(p, get_page, in, NURLS, &(mproc_async_opts){.callback = parser, .user = c}, &r) == 0;
  ok &= mproc_pool_close(p) == 0 && mproc_pool_join(p, MPROC_INFINITE) == 0 && mproc_async_result_get(r, 0) == 0;
  printf("%s: %zu pages in %.2f s\n", what, NURLS, (double)(mproc_monotonic_ns() - t0) / 1e9);
  mproc_async_result_destroy(r);
  mproc_pool_destroy(p);
  return ok;
}

int main(int argc, char **argv) {
  mproc_main_guard(argc, argv);
  crawl threads, processes;
  memset(&threads, 0, sizeof threads);
  memset(&processes, 0, sizeof processes);
  mproc_pool *p = NULL;
  int ok = run("ThreadPool(4)", mproc_thread_pool_create(&p, 4) == 0 ? p : NULL, &threads);
  p = NULL;
  ok &= run("Pool(4)", new_pool(4), &processes);
  ok &= memcmp(&threads, &processes, sizeof threads) == 0 && threads.sizes[0] != 0;
  printf("the same pages either way: %s\n", ok ? "yes" : "NO");
  return ok ? 0 : 1;
}
