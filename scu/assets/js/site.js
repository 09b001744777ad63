/* Saratoga Creek University demo site: small progressive enhancements.
   Plain JavaScript, no dependencies. The page works without it. */
(function () {
  "use strict";

  var body = document.body;

  /* Mobile navigation toggle */
  var navToggle = document.querySelector(".nav-toggle");
  if (navToggle) {
    navToggle.addEventListener("click", function () {
      var open = navToggle.getAttribute("aria-expanded") === "true";
      navToggle.setAttribute("aria-expanded", String(!open));
      body.classList.toggle("nav-open", !open);
    });
  }

  /* Drop-down ("mega") menus: open on click, close on Escape or outside click */
  var menuButtons = Array.prototype.slice.call(document.querySelectorAll(".submenu-toggle"));

  function closeMenus(except) {
    menuButtons.forEach(function (btn) {
      if (btn === except) return;
      btn.setAttribute("aria-expanded", "false");
      btn.parentNode.classList.remove("is-open");
    });
  }

  menuButtons.forEach(function (btn) {
    btn.addEventListener("click", function (ev) {
      ev.stopPropagation();
      var open = btn.getAttribute("aria-expanded") === "true";
      closeMenus(btn);
      btn.setAttribute("aria-expanded", String(!open));
      btn.parentNode.classList.toggle("is-open", !open);
    });
  });

  document.addEventListener("click", function (ev) {
    if (!ev.target.closest || !ev.target.closest(".mega")) closeMenus(null);
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") return;
    var openBtn = menuButtons.filter(function (b) { return b.getAttribute("aria-expanded") === "true"; })[0];
    closeMenus(null);
    if (openBtn) openBtn.focus();
  });

  /* Event list filter */
  var chips = Array.prototype.slice.call(document.querySelectorAll(".event-filters .chip"));
  var events = Array.prototype.slice.call(document.querySelectorAll(".event-list .event"));
  var empty = document.querySelector(".events-empty");

  chips.forEach(function (chip) {
    chip.addEventListener("click", function () {
      var filter = chip.getAttribute("data-filter");
      var shown = 0;
      chips.forEach(function (c) {
        var active = c === chip;
        c.classList.toggle("is-active", active);
        c.setAttribute("aria-pressed", String(active));
      });
      events.forEach(function (li) {
        var match = filter === "all" || li.getAttribute("data-cat") === filter;
        li.hidden = !match;
        if (match) shown += 1;
      });
      if (empty) empty.hidden = shown !== 0;
    });
  });

  /* Lazy images for browsers without native loading="lazy": any <img data-src> */
  var lazy = Array.prototype.slice.call(document.querySelectorAll("img[data-src]"));
  function reveal(img) {
    img.src = img.getAttribute("data-src");
    img.removeAttribute("data-src");
  }
  if (lazy.length) {
    if ("IntersectionObserver" in window) {
      var io = new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting) {
            reveal(entry.target);
            io.unobserve(entry.target);
          }
        });
      }, { rootMargin: "200px 0px" });
      lazy.forEach(function (img) { io.observe(img); });
    } else {
      lazy.forEach(reveal);
    }
  }

  /* Back-to-top link appears after scrolling one screen */
  var toTop = document.querySelector(".back-to-top");
  if (toTop) {
    var ticking = false;
    window.addEventListener("scroll", function () {
      if (ticking) return;
      ticking = true;
      window.requestAnimationFrame(function () {
        toTop.hidden = window.scrollY < window.innerHeight;
        ticking = false;
      });
    }, { passive: true });
  }

  /* Keep the copyright year current */
  var year = document.querySelector("[data-year]");
  if (year) year.textContent = String(new Date().getFullYear());
})();
